-- A public id per online account: random, fixed for the account's life, and the id that
-- security events (webhooks) carry, so a receiver can follow one account across events and
-- key rotations without learning its User ID or its row number. Expand-only: a previous
-- release leaves the column empty on accounts it creates, and the webhook writer fills it.
-- No backfill here: rewriting every account in the migration's transaction would hold the
-- table for the length of the upgrade; an account gets its id with its first event (or at
-- its creation, from this release on).
ALTER TABLE online_accounts ADD COLUMN public_id TEXT;
CREATE UNIQUE INDEX online_accounts_public_id ON online_accounts (public_id);
