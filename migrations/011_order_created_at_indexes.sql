-- wagate: no transaction
-- cleanup (ORDER_RETENTION_DAYS) and /admin/stats filter orders and replies on created_at;
-- without these indexes each run reads the whole table, which only ever grows until then.
-- CONCURRENTLY, so that workers keep writing orders while it builds (the replies' index is 037's).
-- Shipped first as both plain builds in one transaction: its SHARE lock on outbound_messages held
-- every ingest commit, whose batch function writes receipts there, for the whole build.
CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at)
