-- OpenID Connect acr/amr (issue 15): how each sign-in session was authenticated, as the
-- space-separated RFC 8176 method references ("pwd", "pwd otp mfa", "swk mfa", ...).
-- Sessions from before this column signed in with the password alone.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';

-- The sweep deletes expired OpenID Connect state by its expiry time.
CREATE INDEX oidc_requests_expires ON oidc_requests (expires_at);
CREATE INDEX oidc_codes_expires ON oidc_codes (expires_at);
CREATE INDEX oidc_tokens_expires ON oidc_tokens (expires_at);
CREATE INDEX oidc_jti_expires ON oidc_jti (expires_at);

-- How a client's ID tokens are signed (`id_token_signed_response_alg`): "ES256" or "EdDSA".
ALTER TABLE oidc_clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'ES256';
