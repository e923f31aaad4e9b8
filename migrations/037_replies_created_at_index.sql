-- wagate: no transaction
-- The index of replies by created_at for cleanup and /admin/stats (see 011), built concurrently:
-- the ingest's batch function writes receipts into outbound_messages with every commit, and a
-- plain build would hold them all. A database that ran 011 as first shipped has it already, and
-- the runner records it without building it again.
CREATE INDEX CONCURRENTLY outbound_messages_created_at_idx ON outbound_messages (created_at)
