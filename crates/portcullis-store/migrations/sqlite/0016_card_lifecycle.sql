-- The card's life at the issuer (issue 17): its status, the card it replaces (a reissue
-- after loss, or a new number at renewal), when its status last changed, and which
-- registry load changed it (so that load can audit and notify for the cards it changed
-- with one indexed query). A replaced card is found by `replaces_hash` (the keyed hash
-- of the old number, as `number_hash`): only the few records that replace another are
-- indexed.
ALTER TABLE registry_records ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE registry_records ADD COLUMN replaces_hash BLOB;
ALTER TABLE registry_records ADD COLUMN status_since BIGINT;
ALTER TABLE registry_records ADD COLUMN changed_in BIGINT;
-- The load that last named this record's `replaces`: each load looks for reissues to apply
-- among its own records only, not among every reissue ever made.
ALTER TABLE registry_records ADD COLUMN reissued_in BIGINT;
CREATE INDEX registry_records_replaces ON registry_records (replaces_hash)
    WHERE replaces_hash IS NOT NULL;
CREATE INDEX registry_records_changed_in ON registry_records (changed_in)
    WHERE changed_in IS NOT NULL;
CREATE INDEX registry_records_reissued_in ON registry_records (reissued_in)
    WHERE reissued_in IS NOT NULL;

-- Registry pushes over the API with an Idempotency-Key: the key, a hash of the request
-- it came with and the answer given, so a retried push is applied once (and the same key
-- with another body is refused).
CREATE TABLE registry_pushes (
    idempotency_key TEXT   NOT NULL PRIMARY KEY,
    request_hash    BLOB  NOT NULL,
    response        TEXT   NOT NULL,
    created_at      BIGINT NOT NULL
);
