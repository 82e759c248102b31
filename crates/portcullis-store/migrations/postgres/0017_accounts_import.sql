-- Accounts imported from an issuer's earlier login system (issue 17): when each came in
-- (their password hash stays in its old form until the first sign-in replaces it with
-- argon2id), and the earlier system's "must change password", kept until a new password is
-- set (which clears it).
ALTER TABLE online_accounts ADD COLUMN imported_at BIGINT;
ALTER TABLE online_accounts ADD COLUMN must_change_password_at BIGINT;
-- Imported accounts bring no security answers (the earlier system's hashes of them cannot be
-- checked): set at import, cleared when the person chooses questions after signing in.
ALTER TABLE online_accounts ADD COLUMN security_questions_required_at BIGINT;
