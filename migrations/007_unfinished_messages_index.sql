-- wagate: no transaction
-- Workers count messages that should have finished long ago (wagate_messages_stuck); the
-- partial index keeps that to the few unfinished rows, however large the table grows.
-- CONCURRENTLY, so that ingest keeps writing while it builds. If the build fails, it leaves
-- an invalid index: DROP INDEX CONCURRENTLY webhook_messages_unfinished_idx, then migrate again.
CREATE INDEX CONCURRENTLY webhook_messages_unfinished_idx ON webhook_messages (updated_at) WHERE status IN ('queued', 'processing')
