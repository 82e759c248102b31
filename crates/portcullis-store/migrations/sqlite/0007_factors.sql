-- Second factors (flow 6). An authenticator app's secret and a passkey's credential are
-- sealed under factor.key from the secrets folder; email and text codes need no secret (the code mechanism of recovery).
CREATE TABLE factors (
    id           INTEGER PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES online_accounts (id),
    kind         TEXT   NOT NULL,            -- 'totp', 'email', 'sms' or 'passkey'
    name         TEXT   NOT NULL,
    secret       TEXT,                        -- sealed:v1:… (totp secret; passkey credential)
    credential_id TEXT  UNIQUE,               -- passkeys: base64url credential ID
    confirmed    BIGINT NOT NULL DEFAULT 0,
    -- The last time step a TOTP code was accepted for: a code is never taken twice.
    last_step    BIGINT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX factors_account ON factors (account_id);

-- Ten single-use recovery codes per account, argon2id; hint is one byte of a keyed hash of
-- the code, so a try is checked against about one stored hash rather than all ten.
CREATE TABLE recovery_codes (
    id         INTEGER PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES online_accounts (id),
    hint       BIGINT NOT NULL,
    code_hash  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_account ON recovery_codes (account_id);

-- "Trust this device": skips the second factor on that device until then.
ALTER TABLE devices ADD COLUMN trusted_until BIGINT;
-- Re-authentication (password re-entered) for factor changes.
ALTER TABLE sessions ADD COLUMN reauth_at BIGINT;
