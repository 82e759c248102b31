-- Key rotation (docs/design/keys.md). Keys live in the secrets folder, never here; what a
-- key protects names its key id (a sealed value starts `sealed:v2:ID:`). The re-seal job,
-- which moves sealed values to the current key in small batches, runs on one node at a
-- time under this lease.
INSERT INTO job_leases (name, lease_until) VALUES ('reseal', 0);
