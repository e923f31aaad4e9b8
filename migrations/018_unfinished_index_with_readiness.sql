-- wagate: no transaction
-- The index of unfinished messages (014) again, carrying status and waiting_until (016), so
-- that the autoscaler's count of ready messages stays an index-only scan: it reads whether a
-- queued message is parked in a retry tier, and without these columns in the index every
-- unfinished row was fetched from the table, about ten times the cost, every tick, and most
-- of all during a provider outage, when the parked messages pile up. CONCURRENTLY, so that
-- ingest keeps writing while it builds.
CREATE INDEX CONCURRENTLY webhook_messages_unfinished_ready_idx ON webhook_messages (updated_at) INCLUDE (status, waiting_until) WHERE wagate_unfinished(status)
