-- A private_key_jwt client may publish its keys at a jwks_uri instead of registering a
-- JWKS document. The fetched key set is cached here, so every node shares one copy and one
-- fetch budget: `fetched_at` says how old the set is (used until the TTL, kept as a
-- fallback until the maximum age), `attempted_at` when a fetch was last claimed (a
-- conditional upsert that only one request per interval wins). Expand-only: a previous
-- release ignores the column and the table.
ALTER TABLE oidc_clients ADD COLUMN jwks_uri TEXT;
CREATE TABLE oidc_jwks_cache (
    client_id           TEXT   PRIMARY KEY,
    jwks                TEXT,
    fetched_at          BIGINT,
    attempted_at        BIGINT NOT NULL
);
