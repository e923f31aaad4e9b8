-- cleanup (ORDER_RETENTION_DAYS) and /admin/stats filter orders and replies on created_at;
-- without these indexes each run reads the whole table, which only ever grows until then.
-- Built in the migration's transaction: the tables are small next to webhook_messages, and
-- a plain CREATE INDEX blocks writes to them only for the few seconds the build takes.
CREATE INDEX IF NOT EXISTS orders_created_at_idx ON orders (created_at);
CREATE INDEX IF NOT EXISTS outbound_messages_created_at_idx ON outbound_messages (created_at);
