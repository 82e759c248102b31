-- A registry load's staged rows name the registry key id their HMACs are under (the
-- ring's current key, docs/design/keys.md "The registry key"): the merge into
-- registry_records writes it with them.
ALTER TABLE registry_staging ADD COLUMN key_id BIGINT NOT NULL DEFAULT 1;
