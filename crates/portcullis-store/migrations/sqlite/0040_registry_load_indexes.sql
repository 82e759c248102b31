-- Registry loads (issue 17, docs/benchmarks.md figure 10), two index changes that change no
-- statement's result (expand-only in the sense of docs/design/availability.md: the
-- previous release runs on this schema as before).
--
-- 1. Every record a load writes went into seven indexes of registry_records. The one on
--    `email` served no query: nothing looks a registry record up by its email (contact
--    details are read from the record found by its keyed number hash, or through
--    account_cards), in this release or the previous one. On PostgreSQL it was also the
--    table's only text index, compared with the database's collation (`strcoll` for
--    `C.UTF-8`).
DROP INDEX IF EXISTS registry_records_email;
-- 2. A load finds its staged rows by its number (the merge and the delete that follows).
--    Without an index each merge scanned the whole staging table, and on PostgreSQL that
--    table keeps the deleted rows of earlier loads until a vacuum: 100 pushes of 10,000
--    rows left a 236 MB table that every later push scanned (measured with psql: 29 % less
--    backend CPU for 1,000,000 records with this index). SQLite's loads stage in a TEMP
--    table of their own connection, which holds one load's rows at a time; the index is
--    here too so both schemas stay alike.
CREATE INDEX registry_staging_load ON registry_staging (load);
