-- The card ID limit per card (issue 13): wrong card IDs count on the card itself, across
-- every client address and every flow that checks one (registration, linking, forgot
-- password). `tries` counts the window's claimed tries (a right card ID gives its try
-- back); `paused_at` is set by the wrong try that reaches the limit and stays until support
-- clears the row. One row per card that has been guessed at; none for the others.
CREATE TABLE card_guard (
    registry_record_id BIGINT  PRIMARY KEY REFERENCES registry_records (id) ON DELETE CASCADE,
    tries              BIGINT  NOT NULL,
    window_start       BIGINT  NOT NULL,
    paused_at          BIGINT
);
