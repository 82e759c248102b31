-- OpenID Connect provider (issue 15). Every piece of OIDC state lives here, so any node
-- can finish what another began: registered clients, pushed authorization requests,
-- authorization codes, issued tokens (access and refresh, by the SHA-256 of their value)
-- and the DPoP proof ids already seen.
CREATE TABLE oidc_clients (
    id                  INTEGER PRIMARY KEY,
    client_id           TEXT   NOT NULL UNIQUE,
    name                TEXT   NOT NULL,
    -- "client_secret_basic", "private_key_jwt" or "none" (a public client).
    auth_method         TEXT   NOT NULL,
    -- HMAC-SHA-256 of the secret under the service's keyed hash (secrets are 256-bit).
    secret_hash         BLOB,
    -- The client's public keys (a JWKS document) for private_key_jwt.
    jwks                TEXT,
    -- JSON arrays of exact URIs.
    redirect_uris       TEXT   NOT NULL,
    post_logout_uris    TEXT   NOT NULL,
    first_party         BIGINT NOT NULL DEFAULT 0,
    -- "fapi2" or "" (none).
    profile             TEXT   NOT NULL DEFAULT '',
    created_at          BIGINT NOT NULL,
    revoked_at          BIGINT
);

-- Pushed authorization requests (RFC 9126) and the authorization requests waiting for a
-- sign-in: the validated request, single use, short lived.
CREATE TABLE oidc_requests (
    id                  INTEGER PRIMARY KEY,
    handle_hash         BLOB   NOT NULL UNIQUE,
    client_id           TEXT   NOT NULL,
    -- The validated request (redirect_uri, scope, state, nonce, PKCE challenge, dpop_jkt…).
    request             TEXT   NOT NULL,
    pushed              BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    used_at             BIGINT
);

-- Authorization codes: single use; a second use revokes what the first issued.
CREATE TABLE oidc_codes (
    id                  INTEGER PRIMARY KEY,
    code_hash           BLOB   NOT NULL UNIQUE,
    client_id           TEXT   NOT NULL,
    account_id          BIGINT NOT NULL,
    session_id          BIGINT NOT NULL,
    request             TEXT   NOT NULL,
    auth_time           BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    used_at             BIGINT
);

-- Access and refresh tokens, by the SHA-256 of their value. A refresh token belongs to a
-- family (the grant); a reused refresh token revokes the whole family.
CREATE TABLE oidc_tokens (
    id                  INTEGER PRIMARY KEY,
    token_hash          BLOB   NOT NULL UNIQUE,
    kind                TEXT   NOT NULL,
    family              TEXT   NOT NULL,
    code_id             BIGINT,
    client_id           TEXT   NOT NULL,
    account_id          BIGINT NOT NULL,
    session_id          BIGINT NOT NULL,
    scope               TEXT   NOT NULL,
    -- The JWK thumbprint of the DPoP key the token is bound to, when it is.
    dpop_jkt            TEXT,
    auth_time           BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    used_at             BIGINT,
    revoked_at          BIGINT
);
CREATE INDEX oidc_tokens_family ON oidc_tokens (family);
CREATE INDEX oidc_tokens_code ON oidc_tokens (code_id);

-- One-time JWT ids seen: DPoP proofs and client assertions (replay cache shared by every
-- node), kept until the JWT could no longer be accepted.
CREATE TABLE oidc_jti (
    jti_hash            BLOB   NOT NULL PRIMARY KEY,
    expires_at          BIGINT NOT NULL
);
