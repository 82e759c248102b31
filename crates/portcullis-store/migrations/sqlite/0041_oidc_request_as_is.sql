-- An authorization request pushed (PAR) whose answer, for a browser without a session, is
-- only "sign in first": `login_as_is` = 1 when nothing in it depends on when it reaches
-- the authorization endpoint (no `prompt=login`, no `max_age`) and it does not ask for
-- `prompt=none`. The authorization endpoint then hands such a request to the sign-in in one
-- conditional UPDATE, under a new handle and unchanged, instead of using it and storing it
-- again (docs/design/oidc.md). Expand-only: a previous release ignores the column, writes
-- its default (0, never re-keyed) and reads re-keyed rows as it reads its own.
ALTER TABLE oidc_requests ADD COLUMN login_as_is BIGINT NOT NULL DEFAULT 0;
