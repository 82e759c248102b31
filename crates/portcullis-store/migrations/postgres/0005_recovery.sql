-- Wrong answers in a flow step (recovery verification) are counted on the step.
ALTER TABLE steps ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;

-- One-time codes: 6 digits, stored only as a keyed hash bound to the step they belong to.
CREATE TABLE one_time_codes (
    step_hash    BYTEA  NOT NULL PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES online_accounts (id),
    purpose      TEXT   NOT NULL,
    code_hash    BYTEA  NOT NULL,
    channel      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_sent_at BIGINT NOT NULL,
    sends        BIGINT NOT NULL DEFAULT 1,
    attempts     BIGINT NOT NULL DEFAULT 0,
    used_at      BIGINT
);
CREATE INDEX one_time_codes_expiry ON one_time_codes (expires_at);

CREATE INDEX online_accounts_email ON online_accounts (email);
