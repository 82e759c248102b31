-- A registry load's records before they meet the registry (issue 17): each load appends its
-- rows here (no index to maintain, in arrival order), then one statement upserts them into
-- registry_records sorted by number_hash, so the unique index takes sorted inserts instead
-- of random ones, and deletes them. Rows of a load that never commits roll back with it.
-- PostgreSQL keeps no WAL for it (UNLOGGED): its rows never outlive their transaction.
CREATE TABLE registry_staging (
    load              BIGINT NOT NULL,
    account_type      TEXT   NOT NULL,
    number_hash       BLOB  NOT NULL,
    verification_hash BLOB  NOT NULL,
    last4             TEXT   NOT NULL,
    expiry            TEXT,
    holder_name       TEXT   NOT NULL,
    email             TEXT,
    phone             TEXT,
    product           TEXT   NOT NULL,
    balance           BIGINT,
    credit_limit      BIGINT,
    payment_due_date  TEXT,
    minimum_due       BIGINT,
    status            TEXT   NOT NULL,
    replaces_hash     BLOB
);
