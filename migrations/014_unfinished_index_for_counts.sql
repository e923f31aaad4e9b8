-- wagate: no transaction
-- The index of unfinished messages again, on wagate_unfinished(status) (see 013), so that the
-- worker's per-message statements always reach their rows through the unique key. CONCURRENTLY,
-- so that ingest keeps writing while it builds; a build that dies leaves an invalid index,
-- which the next `wagate migrate` drops and builds again.
CREATE INDEX CONCURRENTLY webhook_messages_unfinished_count_idx ON webhook_messages (updated_at) WHERE wagate_unfinished(status)
