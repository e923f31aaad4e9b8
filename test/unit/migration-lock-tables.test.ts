import { tablesChanged } from '../../src/db/migrate';

/**
 * migrate waits past deadlock_timeout, so that its lock request cancels an autovacuum in its
 * way, only while a vacuum holds a table the migration changes; where it cannot tell which
 * tables those are, any vacuum counts.
 */
it('reads the tables a migration alters or indexes, and gives up (any table) where it may lock others unseen', () => {
  expect(tablesChanged('ALTER TABLE webhook_messages ADD COLUMN probe integer;\nCREATE INDEX orders_probe_idx ON ONLY orders (probe);')).toEqual(['webhook_messages', 'orders']);
  // A comment that names a table locks nothing.
  expect(tablesChanged('-- unlike ALTER TABLE orders, this adds a column only\nALTER TABLE IF EXISTS replies ADD COLUMN x int;')).toEqual(['replies']);
  expect(tablesChanged('CREATE TABLE order_notes (order_id bigint REFERENCES orders (id));\nCREATE INDEX order_notes_idx ON order_notes (order_id);')).toEqual([]);
  expect(tablesChanged('CREATE TRIGGER t BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION f();')).toEqual([]);
  expect(tablesChanged('ALTER TABLE "Order Items" ADD COLUMN x int;')).toEqual([]);
  expect(tablesChanged('CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;')).toEqual([]);
});
