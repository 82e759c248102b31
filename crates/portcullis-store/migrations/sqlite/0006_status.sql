-- Service status: incidents and planned maintenance posted by operators, the history of
-- each part's state (one row per change, kept for the 90-day view), and the one row that
-- switches maintenance mode on for every node sharing the database.
CREATE TABLE status_incidents (
    id         INTEGER PRIMARY KEY,
    kind       TEXT   NOT NULL CHECK (kind IN ('incident', 'maintenance')),
    title      TEXT   NOT NULL,
    message    TEXT   NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('investigating', 'identified', 'monitoring',
                      'resolved', 'scheduled', 'in_progress', 'completed')),
    starts_at  BIGINT,
    ends_at    BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX status_incidents_updated ON status_incidents (updated_at);

CREATE TABLE status_history (
    id         INTEGER PRIMARY KEY,
    component  TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX status_history_changed ON status_history (changed_at);

-- At most one row (id = 1): maintenance is on while it exists and `until_at` is ahead.
CREATE TABLE maintenance (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    until_at BIGINT NOT NULL,
    message  TEXT   NOT NULL,
    set_at   BIGINT NOT NULL
);
