-- The audit head's hash follows the log (docs/ARCHITECTURE.md, "The audit chain"): after each entry is
-- inserted, the head takes its hash when the entry's seq is the head's, which is the last
-- one the appending transaction reserved (`UPDATE audit_head … RETURNING` first, under the
-- write lock). So an append is two statements, the reservation and one multi-row INSERT,
-- whatever the number of events. Expand-only: a previous release, still setting the head's
-- hash itself after its INSERTs, writes the same value again.
CREATE TRIGGER audit_log_head AFTER INSERT ON audit_log
BEGIN
    UPDATE audit_head SET hash = NEW.hash WHERE id = 1 AND seq = NEW.seq;
END;
