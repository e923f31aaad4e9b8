import { createDatabase, type Sql } from '../../src/db/client';
import { planBatch, rateLimitsJson } from '../../src/ledger/batch-plan';
import type { StatusItem } from '../../src/ledger/items';
import { RECORD_BATCH_SQL } from '../../src/ledger/record-batch-sql';
import type { LedgerRecorder } from '../../src/ledger/recorder';
import { runCleanup } from '../../src/ledger/retention';
import { settleReplies } from '../../src/orders/settle-replies';
import { loadConfig } from '../../src/config';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { GENEROUS_LIMITS, queuedTextItem, serialRecorder } from '../support/ledger-items';
import { testEnv } from '../support/ingest';
import { waitFor } from '../support/wait';
import { uniqueWamid } from '../support/webhooks';

/**
 * A delivery receipt and the settle that gives its reply the provider's id can commit at the
 * same moment, each in a snapshot without the other's row. Postgres's row locks make the two
 * interleavings happen on purpose: a transaction of the test's own holds what one side needs
 * while the other commits.
 */
let db: TestDatabase;
/** The test's own connections: the lock holder and the observer stay clear of the pool under test. */
let side: Sql;
let recorder: LedgerRecorder;

beforeAll(async () => {
  db = await createTestDatabase();
  side = createDatabase({ url: db.url, maxConnections: 3, connectTimeoutSeconds: 5, statementTimeoutMs: 30000, applicationName: 'wagate-test-side' });
  recorder = serialRecorder(db.sql, 30_000);
});

afterAll(async () => {
  await side.end({ timeout: 1 });
  await db.drop();
});

async function replyBeingSent(): Promise<string> {
  const inbound = uniqueWamid();
  const [row] = await db.sql<{ id: string }[]>`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status)
    VALUES (${`reply:whatsapp:${inbound}`}, 'whatsapp', ${inbound}, '15550700001', '106540352242922', 'order_confirmation', 'Order #1', 'sending')
    RETURNING id::text`;
  return row!.id;
}

function delivered(providerMessageId: string, receipt = 'delivered'): StatusItem {
  return {
    kind: 'status',
    source: 'whatsapp',
    messageId: providerMessageId,
    receipt,
    recipient: '15550700001',
    timestampSeconds: Math.floor(Date.now() / 1000),
    payload: {},
  };
}

const settleAsSent = (replyId: string, providerMessageId: string) =>
  settleReplies(db.sql, [{ replyId, status: 'sent', providerMessageId, error: null, source: 'whatsapp', finish: null }]);

const record = (item: StatusItem) => recorder.record({ items: [item], receivedAtMs: Date.now(), traceparent: '' });

const deliveryStatusOf = async (replyId: string) =>
  (await db.sql<{ delivery_status: string | null }[]>`SELECT delivery_status FROM outbound_messages WHERE id = ${replyId}`)[0]!.delivery_status;

/** Waits until a backend of the pool under test waits on a lock that one of the test's own transactions holds. */
const blockedOnALock = (what: string) =>
  waitFor(what, async () => {
    const [row] = await side<{ n: number }[]>`
      SELECT count(*)::integer AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'wagate-test' AND wait_event_type = 'Lock'`;
    return row!.n > 0;
  });

/**
 * The first interleaving: the settle takes its snapshot and waits for the reply row, which the
 * test holds, while the receipt commits and finds no reply with this id. `whileHeld` runs
 * before the settle may go on.
 */
async function settleWhileTheReceiptCommits(replyId: string, providerMessageId: string, whileHeld: () => Promise<void> = async () => undefined) {
  const holder = await side.reserve();
  try {
    await holder`BEGIN`;
    await holder`SELECT 1 FROM outbound_messages WHERE id = ${replyId} FOR UPDATE`;
    const settling = settleAsSent(replyId, providerMessageId);
    await blockedOnALock('the settle to wait for the reply row');
    await expect(record(delivered(providerMessageId))).resolves.toEqual(['status']);
    await whileHeld();
    await holder`COMMIT`;
    return await settling;
  } finally {
    holder.release();
  }
}

it('the settle takes only a receipt that ranks: one that says nothing of delivery (queued, warning) leaves the reply without a delivery status', async () => {
  const replyId = await replyBeingSent();
  const providerMessageId = uniqueWamid();
  await expect(record(delivered(providerMessageId, 'warning'))).resolves.toEqual(['status']);
  await settleAsSent(replyId, providerMessageId);
  expect(await deliveryStatusOf(replyId)).toBeNull();
  await expect(record(delivered(providerMessageId, 'sent'))).resolves.toEqual(['status']);
  expect(await deliveryStatusOf(replyId)).toBe('sent');
});

it('the settle folds in a receipt that committed while it waited, unseen by its snapshot', async () => {
  const replyId = await replyBeingSent();
  await settleWhileTheReceiptCommits(replyId, uniqueWamid(), async () => {
    expect(await deliveryStatusOf(replyId)).toBeNull();
  });
  expect(await deliveryStatusOf(replyId)).toBe('delivered');
});

it('the ingest folds in a settle that committed while its receipt waited, unseen by its snapshot', async () => {
  const replyId = await replyBeingSent();
  const providerMessageId = uniqueWamid();
  const holder = await side.reserve();
  let recording: Promise<unknown> = Promise.resolve();
  try {
    await holder`BEGIN`;
    // The same receipt, uncommitted: the batch's insert waits for this transaction to end.
    await holder`INSERT INTO message_statuses (webhook_source, message_id, status) VALUES ('whatsapp', ${providerMessageId}, 'delivered')`;
    recording = record(delivered(providerMessageId));
    await blockedOnALock('the receipt to wait for the same receipt uncommitted');
    await settleAsSent(replyId, providerMessageId);
    expect(await deliveryStatusOf(replyId)).toBeNull();
    await holder`ROLLBACK`;
  } finally {
    holder.release();
  }
  await expect(recording).resolves.toEqual(['status']);
  expect(await deliveryStatusOf(replyId)).toBe('delivered');
});

it('names the reply a new receipt found, so that the ingest folds only the receipts that found none', async () => {
  const replyId = await replyBeingSent();
  const sentId = uniqueWamid();
  await settleAsSent(replyId, sentId);
  const plan = planBatch([{ items: [delivered(sentId), delivered(uniqueWamid())], receivedAtMs: Date.now(), traceparent: '' }]);
  const rows = await db.sql.unsafe<{ ord: number; outcome: string; row_id: string | null }[]>(RECORD_BATCH_SQL, [
    JSON.stringify(plan.rows),
    JSON.stringify(rateLimitsJson(GENEROUS_LIMITS)),
    60,
  ]);
  expect(rows.map((row) => [row.ord, row.outcome, row.row_id === null ? null : String(row.row_id)]).sort()).toEqual([
    [0, 'status', replyId],
    [1, 'status', null],
  ]);
});

/** Both commits done, neither fold: what a process that died between its commit and its fold leaves. */
async function receiptLeftBehind(): Promise<{ replyId: string; providerMessageId: string }> {
  const replyId = await replyBeingSent();
  const providerMessageId = uniqueWamid();
  await db.sql`INSERT INTO message_statuses (webhook_source, message_id, status) VALUES ('whatsapp', ${providerMessageId}, 'delivered')`;
  await db.sql`UPDATE outbound_messages SET status = 'sent', provider_message_id = ${providerMessageId} WHERE id = ${replyId}`;
  return { replyId, providerMessageId };
}

it("folds a provider's retry of a stored receipt in, for when the first fold failed after the commit", async () => {
  const { replyId, providerMessageId } = await receiptLeftBehind();
  await expect(record(delivered(providerMessageId))).resolves.toEqual(['status_duplicate']);
  expect(await deliveryStatusOf(replyId)).toBe('delivered');
});

it('cleanup folds in the recent receipts that never reached their replies', async () => {
  const left = await receiptLeftBehind();
  const old = await receiptLeftBehind();
  await db.sql`UPDATE message_statuses SET created_at = now() - interval '4 days' WHERE message_id = ${old.providerMessageId}`;
  const report = await runCleanup(db.sql, loadConfig(testEnv(db.url)), { days: 9, personalDataDays: 7, orderDays: 365 });
  expect(report.receipts_folded).toBe(1);
  expect(await deliveryStatusOf(left.replyId)).toBe('delivered');
  expect(await deliveryStatusOf(old.replyId)).toBeNull();
});

it('a fold that outlives the deadline fails only the requests with its receipts, and holds its batch slot until Postgres answers', async () => {
  const { replyId, providerMessageId } = await receiptLeftBehind();
  const short = serialRecorder(db.sql, 3000);
  const holder = await side.reserve();
  let drained = false;
  let draining: Promise<void> = Promise.resolve();
  try {
    await holder`BEGIN`;
    // The fold must lock the reply to move it: it waits for this transaction, past the deadline.
    await holder`SELECT 1 FROM outbound_messages WHERE id = ${replyId} FOR UPDATE`;
    // One batch: both are handed in within the same event-loop turn.
    const message = short.record({ items: [queuedTextItem({ sender: '15550700002' })], receivedAtMs: Date.now(), traceparent: '' });
    const receipt = short.record({ items: [delivered(providerMessageId)], receivedAtMs: Date.now(), traceparent: '' });
    await expect(message).resolves.toEqual(['queued']);
    await expect(receipt).rejects.toMatchObject({ code: 'LEDGER_TIMEOUT' });
    draining = short.drain().then(() => void (drained = true));
    await blockedOnALock('the fold to wait for the reply row');
    expect(drained).toBe(false);
    await holder`COMMIT`;
  } finally {
    holder.release();
  }
  await draining;
  expect(await deliveryStatusOf(replyId)).toBe('delivered');
});

it('a settle whose fold fails after its commit reports the failure instead of throwing, with the reply settled', async () => {
  const replyId = await replyBeingSent();
  const providerMessageId = uniqueWamid();
  // Refuses what only a fold does: moving the delivery status of a reply that already has its provider id.
  await db.sql.unsafe(`
    CREATE FUNCTION refuse_fold() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the fold is refused here'; END $$;
    CREATE TRIGGER refuse_fold BEFORE UPDATE ON outbound_messages FOR EACH ROW
      WHEN (OLD.provider_message_id IS NOT NULL AND NEW.delivery_status IS DISTINCT FROM OLD.delivery_status)
      EXECUTE FUNCTION refuse_fold();`);
  try {
    // As in the first test: the receipt commits while the settle waits, so only the settle's fold can move the reply.
    const { foldFailure } = await settleWhileTheReceiptCommits(replyId, providerMessageId);
    expect((foldFailure as Error).message).toContain('the fold is refused here');
  } finally {
    await db.sql.unsafe(`DROP TRIGGER refuse_fold ON outbound_messages; DROP FUNCTION refuse_fold()`);
  }
  const [reply] = await db.sql<{ status: string; provider_message_id: string }[]>`
    SELECT status, provider_message_id FROM outbound_messages WHERE id = ${replyId}`;
  expect(reply).toEqual({ status: 'sent', provider_message_id: providerMessageId });
});
