-- Idempotency-Keys of API requests that create something (registration completion): the
-- key, the use it was given with (`scope`), a hash of the request and the answer given, so
-- a retry whose first answer was lost is answered the same without being applied again,
-- and the same key with another request is refused. Written in the transaction of the
-- write itself; the sweep deletes keys a day old (docs/design/availability.md).
CREATE TABLE idempotency_keys (
    scope           TEXT   NOT NULL,
    idempotency_key TEXT   NOT NULL,
    request_hash    BLOB   NOT NULL,
    response        TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
