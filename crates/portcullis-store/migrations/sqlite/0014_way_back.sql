-- The holder's own way back to a paused card (issue 13): a one-time code to the registry's
-- email or phone, then the right card ID. Those card IDs count here, on the paused card,
-- apart from `tries` (the guesses that paused it); after the limit only support clears it.
-- Clearing deletes the row, and with it this count.
ALTER TABLE card_guard ADD COLUMN unpause_tries BIGINT NOT NULL DEFAULT 0;

-- "This was not me" undoes contact changes (issue 13): every change of an account's email or
-- phone keeps the value it replaced, so the changes made since a disputed sign-in can be
-- reverted (an intruder's address would otherwise receive the owner's recovery codes).
CREATE TABLE contact_history (
    id         INTEGER PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES online_accounts (id),
    field      TEXT   NOT NULL,
    old_value  TEXT,
    changed_at BIGINT NOT NULL
);
CREATE INDEX contact_history_account ON contact_history (account_id, changed_at);
