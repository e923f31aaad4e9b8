import { createTestDatabase, type TestDatabase } from '../support/database';

/**
 * Cleanup deletes orders in batches, and outbound_messages.order_id references them ON DELETE
 * SET NULL: for each order, Postgres finds its replies by order_id. That look must use an
 * index; without one it read every reply, and a batch of 1,000 orders against 400,000
 * replies took 36 s.
 */
const ORDERS = 20_000;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`
    INSERT INTO orders (webhook_source, message_id, phone_number, sender_key, total, currency)
    SELECT 'whatsapp', 'm.' || g, '1555' || g % 500, 'k' || g % 500, 2.50, 'EUR' FROM generate_series(1, ${ORDERS}) g`;
  await db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, order_id, recipient, business_number, kind, body)
    SELECT 'reply:whatsapp:m.' || o.message_id, 'whatsapp', o.message_id, o.id, o.phone_number, '100', 'order_confirmation', 'Thanks'
    FROM orders o`;
  await db.sql`ANALYZE orders`;
  await db.sql`ANALYZE outbound_messages`;
}, 60_000);

afterAll(async () => {
  await db.drop();
});

it('finds the replies of a deleted order by index, as the foreign key\'s ON DELETE SET NULL does', async () => {
  const [order] = await db.sql<{ id: string }[]>`SELECT id::text FROM orders ORDER BY orders.id LIMIT 1`;
  // The statement the foreign key's action runs for each deleted order.
  const plan = (await db.sql.unsafe<{ 'QUERY PLAN': string }[]>(`EXPLAIN UPDATE outbound_messages SET order_id = NULL WHERE order_id = ${Number(order!.id)}`))
    .map((row) => row['QUERY PLAN'])
    .join('\n');
  expect(plan).toContain('outbound_messages_order_id_idx');
  expect(plan).not.toContain('Seq Scan');
});

it('deletes a batch of orders and leaves their replies with no order', async () => {
  const deleted = await db.sql`DELETE FROM orders WHERE id IN (SELECT id FROM orders ORDER BY orders.id LIMIT 1000) RETURNING id`;
  expect(deleted).toHaveLength(1000);
  const [left] = await db.sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM outbound_messages WHERE order_id IS NULL`;
  expect(left!.n).toBe(1000);
});
