-- Security events out (issue 17): webhook subscriptions, and one delivery row per event per
-- matching subscription, written in the unit of work of the change that caused the event
-- and delivered under a lease like the outbox (docs/design/webhooks.md). Times are Unix
-- seconds.
CREATE TABLE webhook_subscriptions (
    id         INTEGER PRIMARY KEY,
    url        TEXT    NOT NULL,
    -- ',' + event types + ',' (so a type is matched with LIKE '%,type,%'), or 'all'.
    events     TEXT    NOT NULL,
    -- The signing secret (whsec_…), sealed under the outbox keyring: it must be read back
    -- to sign, so it cannot be hashed.
    secret     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    subscription_id BIGINT  NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    -- The `webhook-id` the receiver de-duplicates by: `msg_` + 128 random bits in hex,
    -- written at enqueue and the same on every attempt (never derived from the row id,
    -- which SQLite reuses after deletes).
    message_id      TEXT    NOT NULL UNIQUE,
    event_type      TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    created_at      BIGINT  NOT NULL,
    sent_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, state);
CREATE INDEX webhook_deliveries_claimed_by ON webhook_deliveries (claimed_by) WHERE claimed_by IS NOT NULL;
