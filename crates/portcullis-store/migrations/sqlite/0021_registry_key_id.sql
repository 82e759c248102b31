-- Rotating registry.key (docs/design/keys.md, "The registry key"): each registry row names
-- the key id its number and card-ID HMACs are under. Rows written before rotation existed
-- are under key 1. A lookup computes the number's HMAC under every key of the ring and
-- matches a row under its own key id; the next import moves rows to the current key.
ALTER TABLE registry_records ADD COLUMN key_id BIGINT NOT NULL DEFAULT 1;
