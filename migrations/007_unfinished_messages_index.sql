-- Workers count messages that should have finished long ago (wagate_messages_stuck); the
-- partial index keeps that to the few unfinished rows, however large the table grows.
CREATE INDEX webhook_messages_unfinished_idx ON webhook_messages (updated_at) WHERE status IN ('queued', 'processing');
