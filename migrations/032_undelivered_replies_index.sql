-- wagate: no transaction
-- `wagate replies undelivered` lists the sent replies whose receipt said failed. Without an index
-- it read every reply kept (ORDER_RETENTION_DAYS of them); this one holds only those few. It
-- costs the receipts' updates nothing new: they set updated_at, which 025's index holds, so they
-- were never heap-only updates.
-- CONCURRENTLY, so that workers keep writing replies while it builds.
CREATE INDEX CONCURRENTLY outbound_messages_undelivered_idx ON outbound_messages (id)
  WHERE status = 'sent' AND delivery_status IN ('failed', 'undelivered')
