-- The issuer registry: keyed hashes only, never the card number or card ID.
CREATE TABLE registry_records (
    id                INTEGER PRIMARY KEY,
    account_type      TEXT    NOT NULL,
    number_hash       BLOB    NOT NULL UNIQUE,
    verification_hash BLOB    NOT NULL,
    last4             TEXT    NOT NULL,
    expiry            TEXT,
    holder_name       TEXT    NOT NULL,
    email             TEXT,
    phone             TEXT,
    product           TEXT    NOT NULL,
    balance           BIGINT,
    credit_limit      BIGINT,
    payment_due_date  TEXT,
    minimum_due       BIGINT
);
CREATE INDEX registry_records_email ON registry_records (email);

CREATE TABLE online_accounts (
    id                INTEGER PRIMARY KEY,
    user_id           TEXT    NOT NULL,
    user_id_canonical TEXT    NOT NULL UNIQUE,
    account_type      TEXT    NOT NULL,
    password_hash     TEXT    NOT NULL,
    code_channel      TEXT    NOT NULL,
    email             TEXT,
    phone             TEXT,
    failed_count      BIGINT  NOT NULL DEFAULT 0,
    locked_until      BIGINT,
    status            TEXT    NOT NULL DEFAULT 'active',
    created_at        BIGINT  NOT NULL,
    last_sign_in_at   BIGINT
);

-- One online account per registry record: the primary key is the rule.
CREATE TABLE account_cards (
    registry_record_id BIGINT NOT NULL PRIMARY KEY REFERENCES registry_records (id),
    account_id         BIGINT NOT NULL REFERENCES online_accounts (id),
    linked_at          BIGINT NOT NULL
);
CREATE INDEX account_cards_account ON account_cards (account_id);

CREATE TABLE security_answers (
    account_id  BIGINT NOT NULL REFERENCES online_accounts (id),
    question_id BIGINT NOT NULL,
    answer_hash TEXT   NOT NULL,
    PRIMARY KEY (account_id, question_id)
);

CREATE TABLE steps (
    token_hash BLOB   NOT NULL PRIMARY KEY,
    kind       TEXT   NOT NULL,
    subject_id BIGINT NOT NULL,
    data       TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX steps_expiry ON steps (expires_at);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    token_hash   BLOB   NOT NULL UNIQUE,
    account_id   BIGINT NOT NULL REFERENCES online_accounts (id),
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    user_agent   TEXT,
    client_ip    TEXT
);
CREATE INDEX sessions_account ON sessions (account_id);

-- The audit chain: one head row serialises appends; entries are append-only.
CREATE TABLE audit_head (
    id   BIGINT NOT NULL PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash BLOB   NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE audit_log (
    seq        BIGINT NOT NULL PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    account_id BIGINT,
    actor      TEXT   NOT NULL,
    client_ip  TEXT,
    detail     TEXT   NOT NULL,
    prev_hash  BLOB   NOT NULL,
    hash       BLOB   NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
