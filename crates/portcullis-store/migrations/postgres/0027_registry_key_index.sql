-- Every registry load asks whether any row is under another key than the ring's current
-- one (then it moves them, docs/design/keys.md "The registry key"). Without an index that
-- question scanned the whole registry once per load, each 10,000-record push included
-- (docs/benchmarks.md, figure 10). With this
-- index the lowest and highest key id are two index lookups. Rows are written under the
-- current key, so its entries are appended in order.
CREATE INDEX registry_records_key_id ON registry_records (key_id);
