-- A one-time code by email that cannot be delivered within its life goes by text to the
-- account's phone, when it has one (issue 20): the mirror of fallback_email.
ALTER TABLE outbox ADD COLUMN fallback_phone TEXT;
