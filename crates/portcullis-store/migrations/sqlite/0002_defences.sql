-- Throttling per client address: one row per (action, address) bucket, a fixed window.
CREATE TABLE throttle (
    bucket       TEXT   NOT NULL PRIMARY KEY,
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL
);

-- Devices that have signed in successfully: each carries its own failure allowance.
CREATE TABLE devices (
    id            INTEGER PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES online_accounts (id),
    token_hash    BLOB   NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    user_agent    TEXT,
    failed_count  BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT
);
CREATE INDEX devices_account ON devices (account_id);

-- Earlier password hashes, for profiles that forbid reuse (pci-dss-4: the last 4).
CREATE TABLE password_history (
    id            INTEGER PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES online_accounts (id),
    password_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX password_history_account ON password_history (account_id, id);
