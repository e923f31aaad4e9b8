-- Every queued message inserts an outbox row and deletes it milliseconds later, so each
-- thing maintained per row costs twice per message on the hottest path.
--
-- The foreign key ran a referential-integrity check (a trigger and a lookup that locks the
-- message row) for every insert. Its rows are only ever written in the same statement as
-- their message, or from existing messages by `wagate release`, and cleanup never removes
-- a message that still has an outbox row, so the key protected nothing.
ALTER TABLE outbox DROP CONSTRAINT outbox_webhook_message_id_fkey;

-- The sweep reads the outbox in primary-key order and filters on the lease: the table holds
-- only what is in flight, or, after a broker outage, a backlog whose leases have all expired.
DROP INDEX outbox_lease_until_idx;
