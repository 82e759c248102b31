-- A public id per online account: random, fixed for the account's life, and the id that
-- security events (webhooks) carry, so a receiver can follow one account across events and
-- key rotations without learning its User ID or its row number. Expand-only: a previous
-- release leaves the column empty on accounts it creates, and the webhook writer fills it.
ALTER TABLE online_accounts ADD COLUMN public_id TEXT;
UPDATE online_accounts SET public_id = 'acct_' || lower(hex(randomblob(16)))
    WHERE public_id IS NULL;
CREATE UNIQUE INDEX online_accounts_public_id ON online_accounts (public_id);
