import type { AnsweredDecision } from '../../src/orders/decision';
import { recordDecision } from '../../src/orders/record-decision';
import { buildOrder } from '../../src/orders/order-lines';
import { loadReplyCatalogues } from '../../src/orders/replies';
import type { QueueMessage } from '../../src/queue/message';
import { createDatabase } from '../../src/db/client';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { waitFor } from '../support/wait';
import { uniqueWamid } from '../support/webhooks';

/**
 * A cancel reaches the sender's newest order among those their earlier messages placed. A
 * cancel that waited in a retry tier (Postgres away when it first ran) used to come back after
 * the customer's next order had been placed, and cancel that one, leaving the order it meant open.
 */
const TEXTS = { catalogues: loadReplyCatalogues(), defaultLanguage: 'en' as const };
const POLICY = { cancelWindowHours: 24, stuckAfterMs: 90 * 60_000 };
const COKE = { sku: 'COKE-ARRIVAL', name: 'Coca-Cola', price: '2.50', currency: 'EUR' };
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`INSERT INTO products (sku, name, price, currency) VALUES (${COKE.sku}, ${COKE.name}, ${COKE.price}, ${COKE.currency})`;
});

afterAll(async () => {
  await db.drop();
});

function orderFor(quantity: number): AnsweredDecision {
  const decision = buildOrder([{ product: COKE, quantity }]);
  if (decision.kind !== 'order') throw new Error(`no order of ${quantity}: ${decision.kind}`);
  return decision;
}

/** A message as the ledger records it on arrival: its row id follows the arrival order. */
async function arrived(from: string): Promise<QueueMessage> {
  const messageId = uniqueWamid();
  await db.sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status)
               VALUES ('whatsapp', ${messageId}, ${from}, ${from}, '100', 'processing')`;
  return {
    v: 1, source: 'whatsapp', messageId, from, senderKey: from, business: '100', contactName: null, type: 'text',
    timestampSeconds: null, receivedAt: new Date().toISOString(), content: { text: { body: '' } },
  };
}

/**
 * A sender's first order placed, then their next message failing before its decision was
 * written (Postgres away for it) and waiting in a retry tier, which no longer holds their later
 * messages back.
 */
async function orderedThenOneWaiting(from: string): Promise<{ first: QueueMessage; waiting: QueueMessage }> {
  const first = await arrived(from);
  await recordDecision(db.sql, first, orderFor(1), TEXTS, POLICY);
  const waiting = await arrived(from);
  await db.sql`UPDATE webhook_messages SET status = 'queued' WHERE message_id = ${waiting.messageId}`;
  return { first, waiting };
}

/** The waiting message back from its tier, its order placed. */
async function placedFromItsTier(waiting: QueueMessage): Promise<void> {
  await db.sql`UPDATE webhook_messages SET status = 'processing' WHERE message_id = ${waiting.messageId}`;
  await recordDecision(db.sql, waiting, orderFor(2), TEXTS, POLICY);
}

const orderOf = async (message: QueueMessage) =>
  (await db.sql<{ id: string; status: string }[]>`SELECT id::text, status FROM orders WHERE message_id = ${message.messageId}`)[0]!;

it('cancels the order placed before the cancel arrived, not one placed while the cancel waited to be retried', async () => {
  const from = '15550910001';
  const first = await arrived(from);
  await recordDecision(db.sql, first, orderFor(1), TEXTS, POLICY);
  const cancel = await arrived(from);
  // The customer's next order arrives, and is placed, while the cancel waits in its retry tier.
  const next = await arrived(from);
  await recordDecision(db.sql, next, orderFor(2), TEXTS, POLICY);

  const outcome = await recordDecision(db.sql, cancel, { kind: 'cancel' }, TEXTS, POLICY);
  const meant = await orderOf(first);
  expect(outcome).toMatchObject({ outbound: { kind: 'cancel_confirmation', body: expect.stringContaining(`#${meant.id}`) } });
  expect(meant.status).toBe('cancelled');
  expect((await orderOf(next)).status).toBe('open');
});

it('answers a status question with the order placed before it arrived, as a cancel sent with it would take', async () => {
  const from = '15550910021';
  const first = await arrived(from);
  await recordDecision(db.sql, first, orderFor(1), TEXTS, POLICY);
  const question = await arrived(from);
  // The customer's next order arrives, and is placed, while the question waits in its retry tier.
  const next = await arrived(from);
  await recordDecision(db.sql, next, orderFor(2), TEXTS, POLICY);

  const outcome = await recordDecision(db.sql, question, { kind: 'order_status' }, TEXTS, POLICY);
  expect(outcome).toMatchObject({ outbound: { kind: 'order_status', body: expect.stringContaining(`#${(await orderOf(first)).id}`) } });
  expect(outcome).not.toMatchObject({ outbound: { body: expect.stringContaining(`#${(await orderOf(next)).id}`) } });
});

it('cancels nothing while an earlier message of the sender waits in a retry tier with no decision, and says so', async () => {
  const from = '15550910002';
  const { first, waiting } = await orderedThenOneWaiting(from);
  const cancel = await arrived(from);

  const outcome = await recordDecision(db.sql, cancel, { kind: 'cancel' }, TEXTS, POLICY);
  expect(outcome).toMatchObject({ outbound: { kind: 'cancel_confirmation', body: TEXTS.catalogues.en.cancelEarlierUnanswered, order_id: null } });
  expect((await orderOf(first)).status).toBe('open');

  // Back from its tier, the waiting order is placed; a cancel sent after its answer reaches it.
  await placedFromItsTier(waiting);
  const again = await arrived(from);
  await recordDecision(db.sql, again, { kind: 'cancel' }, TEXTS, POLICY);
  expect([(await orderOf(first)).status, (await orderOf(waiting)).status]).toEqual(['open', 'cancelled']);
});

it('names no order for a status question while an earlier message of the sender waits in a retry tier, and says so', async () => {
  const from = '15550910012';
  const { waiting } = await orderedThenOneWaiting(from);
  const question = await arrived(from);

  // Answered with the first order, the customer learnt of an order other than the one they had just sent.
  const outcome = await recordDecision(db.sql, question, { kind: 'order_status' }, TEXTS, POLICY);
  expect(outcome).toMatchObject({ outbound: { kind: 'order_status', body: TEXTS.catalogues.en.statusEarlierUnanswered, order_id: null } });

  await placedFromItsTier(waiting);
  const again = await arrived(from);
  const answered = await recordDecision(db.sql, again, { kind: 'order_status' }, TEXTS, POLICY);
  expect(answered).toMatchObject({ outbound: { kind: 'order_status', body: expect.stringContaining(`#${(await orderOf(waiting)).id}`) } });
});

it('takes an earlier message untouched for longer than a stuck one for no longer on its way, and answers', async () => {
  const from = '15550910013';
  const { first, waiting } = await orderedThenOneWaiting(from);
  // Its dead write failed, or its queue copy was lost: nothing will finish it until an operator
  // requeues it, and every status question and cancel was told to ask again meanwhile.
  await db.sql`UPDATE webhook_messages SET updated_at = now() - make_interval(secs => ${POLICY.stuckAfterMs / 1000 + 60}) WHERE message_id = ${waiting.messageId}`;
  const question = await arrived(from);
  const outcome = await recordDecision(db.sql, question, { kind: 'order_status' }, TEXTS, POLICY);
  expect(outcome).toMatchObject({ outbound: { kind: 'order_status', body: expect.stringContaining(`#${(await orderOf(first)).id}`) } });
  const cancel = await arrived(from);
  await recordDecision(db.sql, cancel, { kind: 'cancel' }, TEXTS, POLICY);
  expect((await orderOf(first)).status).toBe('cancelled');
});

it('takes the order of the message that arrived last as the newest, not the one written last', async () => {
  const from = '15550910003';
  const earlier = await arrived(from);
  const later = await arrived(from);
  // The later order is placed while the earlier one waits in a retry tier; the earlier one is
  // written after it, and has the higher order number.
  await recordDecision(db.sql, later, orderFor(1), TEXTS, POLICY);
  await recordDecision(db.sql, earlier, orderFor(2), TEXTS, POLICY);
  expect(Number((await orderOf(earlier)).id)).toBeGreaterThan(Number((await orderOf(later)).id));

  // The status names the order a cancel would reach.
  const status = await arrived(from);
  const told = await recordDecision(db.sql, status, { kind: 'order_status' }, TEXTS, POLICY);
  expect(told).toMatchObject({ outbound: { kind: 'order_status', body: expect.stringContaining(`#${(await orderOf(later)).id} `) } });
  const cancel = await arrived(from);
  await recordDecision(db.sql, cancel, { kind: 'cancel' }, TEXTS, POLICY);
  expect([(await orderOf(earlier)).status, (await orderOf(later)).status]).toEqual(['open', 'cancelled']);
});

it('reads only the sender\'s own unfinished messages to ask whether one is still on its way, not the whole backlog', async () => {
  // A backlog of other senders' messages, as after an outage, when status questions come in numbers.
  const BACKLOG = 20_000;
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status)
    SELECT 'whatsapp', 'backlog-' || g, 'backlog-' || (g % 500), 'backlog-' || (g % 500), '100', 'queued' FROM generate_series(1, ${BACKLOG}) g`;
  await db.sql`ANALYZE webhook_messages`;
  const from = '15550910020';
  const first = await arrived(from);
  await recordDecision(db.sql, first, orderFor(1), TEXTS, POLICY);
  const question = await arrived(from);
  const before = await reads();
  // On a pool of its own: its backend reports its reads when it ends.
  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-status' });
  try {
    const outcome = await recordDecision(sql, question, { kind: 'order_status' }, TEXTS, POLICY);
    expect(outcome).toMatchObject({ outbound: { kind: 'order_status', body: expect.stringContaining(`#${(await orderOf(first)).id}`) } });
  } finally {
    await sql.end();
  }
  const after = await waitFor('the status backend\'s statistics', async () => {
    const now = await reads();
    return now.replies > before.replies && now;
  });
  // Through the index of every unfinished message, the check read each of the 20,000.
  expect(after.index - before.index).toBeLessThan(1_000);
});

/** Entries read from webhook_messages' indexes, and replies written, as the statistics have them. */
async function reads(): Promise<{ index: number; replies: number }> {
  const [row] = await db.sql<{ index: number; replies: number }[]>`
    SELECT (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname = 'webhook_messages')::integer AS index,
           (SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'outbound_messages')::integer AS replies`;
  return row!;
}
