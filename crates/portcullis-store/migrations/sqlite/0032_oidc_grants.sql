-- OpenID Connect consent (issue 15): what a person allowed a client that is not
-- first-party to have. One row per account and client; the scopes are the union of every
-- "Allow" given. A later request asking for no more than these skips the consent page.
-- "This was not me" revokes every grant of the account (revoked_at).
CREATE TABLE oidc_grants (
    id                  INTEGER PRIMARY KEY,
    account_id          BIGINT NOT NULL,
    client_id           TEXT   NOT NULL,
    -- Space-separated scopes granted.
    scope               TEXT   NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    revoked_at          BIGINT,
    UNIQUE (account_id, client_id)
);
