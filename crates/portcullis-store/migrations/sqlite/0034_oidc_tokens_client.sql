-- Revoking an OpenID Connect client revokes every token issued to it (one UPDATE by
-- client_id, in the transaction that revokes the client).
CREATE INDEX oidc_tokens_client ON oidc_tokens (client_id);
