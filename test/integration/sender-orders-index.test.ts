import { createTestDatabase, type TestDatabase } from '../support/database';

/**
 * "cancel" and "order status" read a sender's newest order, open or not (026's index). The
 * partial index of open orders that "cancel" used before 0.3.4 is dropped (028): it only cost
 * each new order and each cancel a write.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`
    INSERT INTO orders (webhook_source, message_id, phone_number, sender_key, total, currency, status)
    SELECT 'whatsapp', 'm.' || g, '1555' || g % 500, 'k' || g % 500, 2.50, 'EUR', CASE WHEN g % 3 = 0 THEN 'open' ELSE 'cancelled' END
    FROM generate_series(1, 20000) g`;
  await db.sql`ANALYZE orders`;
}, 60_000);

afterAll(async () => {
  await db.drop();
});

it('finds a sender\'s newest order by index, and keeps no index of open orders alone', async () => {
  // The worker's read for "cancel" (record-decision.ts), with the sender's key inlined.
  const plan = (await db.sql.unsafe<{ 'QUERY PLAN': string }[]>(`
    EXPLAIN SELECT orders.id::text AS id, status FROM orders
    WHERE webhook_source = 'whatsapp' AND sender_key = 'k42' ORDER BY orders.id DESC LIMIT 1 FOR UPDATE`))
    .map((row) => row['QUERY PLAN'])
    .join('\n');
  expect(plan).toContain('orders_by_sender_idx');
  expect(plan).not.toContain('Seq Scan');
  const indexes = await db.sql<{ indexname: string }[]>`SELECT indexname FROM pg_indexes WHERE tablename = 'orders' ORDER BY indexname`;
  expect(indexes.map((row) => row.indexname)).not.toContain('orders_sender_open_idx');
  const [newest] = await db.sql`SELECT message_id FROM orders WHERE webhook_source = 'whatsapp' AND sender_key = 'k42' ORDER BY orders.id DESC LIMIT 1`;
  expect(newest).toEqual({ message_id: 'm.19542' });
});
