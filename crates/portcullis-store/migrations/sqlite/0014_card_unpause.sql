-- The holder's own way back to a paused card (issue 13): a one-time code to the registry's
-- email or phone, then the right card ID. Those card IDs count here, on the paused card,
-- apart from `tries` (the guesses that paused it); after the limit only support clears it.
-- Clearing deletes the row, and with it this count.
ALTER TABLE card_guard ADD COLUMN unpause_tries BIGINT NOT NULL DEFAULT 0;
