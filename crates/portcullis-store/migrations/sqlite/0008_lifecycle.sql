-- Account lifecycle (flows 9 and 10): the inactivity clock, its warning and deactivation,
-- and the lease rows of scheduled jobs that several nodes share.
--
-- `last_active_at` is what inactivity counts from: the account's creation, its last
-- sign-in, or its reactivation, whichever came last.
ALTER TABLE online_accounts ADD COLUMN last_active_at BIGINT;
ALTER TABLE online_accounts ADD COLUMN inactivity_warned_at BIGINT;
ALTER TABLE online_accounts ADD COLUMN deactivated_at BIGINT;
UPDATE online_accounts SET last_active_at = COALESCE(last_sign_in_at, created_at);
CREATE INDEX online_accounts_inactivity ON online_accounts (status, last_active_at);

-- One row per scheduled job: a node runs the job only after claiming the row with one
-- conditional UPDATE (`WHERE lease_until <= now`), so one node runs it per interval.
CREATE TABLE job_leases (
    name        TEXT   NOT NULL PRIMARY KEY,
    holder      TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0
);
INSERT INTO job_leases (name, lease_until) VALUES ('inactivity', 0);
