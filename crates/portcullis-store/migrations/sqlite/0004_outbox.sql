-- The durable outbox: one row per message, committed with the state change that caused it
-- and delivered by a worker that leases rows (claimed_by, claimed_until) so that two nodes
-- never send the same row. Times are Unix seconds.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    channel         TEXT    NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    fallback_email  TEXT,
    -- 1 when the body carries a one-time code: blanked once the message is settled.
    sensitive       BIGINT  NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    created_at      BIGINT  NOT NULL,
    sent_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_claimed_by ON outbox (claimed_by) WHERE claimed_by IS NOT NULL;

-- SMS cost controls: one counter per number, per country prefix and for the whole service,
-- each for one UTC day (days since the epoch); a new day starts the count again.
CREATE TABLE sms_quota (
    counter TEXT   NOT NULL PRIMARY KEY,
    day     BIGINT NOT NULL,
    count   BIGINT NOT NULL
);
