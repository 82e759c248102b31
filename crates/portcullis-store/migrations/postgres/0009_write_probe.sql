-- The write probe: each node upserts its own row every status probe, so readiness and the
-- status page see whether the database takes a committed write (a full disk, a read-only
-- file system or a stuck lock shows here; a `SELECT 1` would still answer).
CREATE TABLE write_probe (
    node      TEXT   PRIMARY KEY,
    probed_at BIGINT NOT NULL
);
