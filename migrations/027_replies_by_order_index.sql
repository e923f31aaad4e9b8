-- wagate: no transaction
-- outbound_messages.order_id references orders ON DELETE SET NULL: for each order cleanup
-- deletes, Postgres looks for its replies by order_id. Without an index each look read the
-- whole table, so a batch of 1,000 orders against 400,000 replies took 36 s, and the cost grew
-- with the product of the two. CONCURRENTLY, so that workers keep writing while it builds. If
-- the build fails, migrate again: the migrator drops the invalid index and builds it anew.
CREATE INDEX CONCURRENTLY outbound_messages_order_id_idx ON outbound_messages (order_id) WHERE order_id IS NOT NULL
