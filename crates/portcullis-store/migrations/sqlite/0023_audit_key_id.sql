-- The audit chain's own key (docs/design/keys.md, "The audit chain key"): each entry names
-- the id, in audit.key's keyring, of the key its hash is under, and is verified under that
-- key. Entries written before are under key 1, which is the key they were written under
-- (audit.key is created with it). Adding a column with a constant default rewrites nothing
-- and leaves the append-only triggers as they are.
ALTER TABLE audit_log ADD COLUMN key_id BIGINT NOT NULL DEFAULT 1;
