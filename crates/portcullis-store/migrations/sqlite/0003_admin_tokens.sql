-- Admin tokens for the support console: the SHA-256 of each token, never the token. One
-- active token per name (the support agent it belongs to), so `revoke NAME` is exact and
-- the audit log's `support:<name>` names one person.
CREATE TABLE admin_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT   NOT NULL,
    token_hash   BLOB   NOT NULL UNIQUE,
    -- Space-separated scope names, e.g. 'accounts:read audit:read'.
    scopes       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX admin_tokens_active_name ON admin_tokens (name) WHERE revoked_at IS NULL;
