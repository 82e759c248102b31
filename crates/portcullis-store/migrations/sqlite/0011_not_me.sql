-- "This was not me" (issue 13): the password the disputed sign-in used is marked
-- compromised; sign-in refuses it (423 to the right password) until a new one is set by
-- recovery (card ID + code) or support. Setting a password clears the mark.
ALTER TABLE online_accounts ADD COLUMN password_compromised_at BIGINT;
-- Security answers are one lockout counter per account, across recovery steps: the same
-- machine as `failed_count`/`locked_until` (core/src/lockout.rs), on columns of their own.
ALTER TABLE online_accounts ADD COLUMN answer_failed_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE online_accounts ADD COLUMN answers_locked_until BIGINT;
