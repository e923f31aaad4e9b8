-- wagate: no transaction
-- A sender's unfinished messages, for the check a cancel or a status question makes of an
-- earlier message still on its way (a retry tier). Through 018's index it read every unfinished
-- message, so after an outage, with the backlog deep and status questions coming in numbers,
-- each one read the whole backlog inside its shard's transaction. Like 018's, it holds only the
-- unfinished rows: a message's insert and its status changes add an entry while it is on its way.
-- CONCURRENTLY, so that ingest keeps writing while it builds.
CREATE INDEX CONCURRENTLY webhook_messages_unfinished_by_sender_idx ON webhook_messages (webhook_source, sender_key, id) WHERE wagate_unfinished(status)
