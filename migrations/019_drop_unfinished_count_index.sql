-- wagate: no transaction
-- The index that 018 replaces; dropped CONCURRENTLY, so that ingest keeps writing meanwhile.
DROP INDEX CONCURRENTLY IF EXISTS webhook_messages_unfinished_count_idx
