import { randomUUID } from 'node:crypto';
import type { Sql } from '../../src/db/client';
import { countBacklog } from '../../src/autoscaler/backlog';
import { markSending } from '../../src/orders/mark-sending';
import { settleReplies } from '../../src/orders/settle-replies';
import { writeDecisions, type DecisionWrite } from '../../src/orders/write-decisions';
import type { QueueMessage } from '../../src/queue/message';
import { claimMessages } from '../../src/worker/claim-messages';
import { createTestDatabase, explainingClient, type TestDatabase } from '../support/database';

/**
 * The worker's batched statements reach a message's row through the unique key, whatever the
 * statistics say. The case that broke it: statistics taken while nearly every message was
 * finished, then a backlog. Offered a partial index of unfinished messages, the planner read
 * every unfinished row for each batch (the estimate said a few dozen), so a claim's cost grew
 * with the backlog it was draining. Plans are read with auto_explain, sent back as notices.
 */
/** Enough finished rows that reading the whole table is not the cheap way to find 32 (it is for a few thousand). */
const FINISHED = 30_000;
const BACKLOG = 3000;
const BATCH = 32;
const UNIQUE_KEY_INDEX = 'webhook_messages_source_message_id_key';
const FENCE = { queuePrefix: 'plans', memberId: 'worker-plans', shardCount: 4 };

let db: TestDatabase;
let explained: Sql;
const plans: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
    SELECT 'whatsapp', 'done.' || g, '1555' || g % 500, 'k' || g % 500, '100', 'processed', jsonb_build_object('pad', repeat('x', 500))
    FROM generate_series(1, ${FINISHED}) g`;
  await db.sql`ANALYZE webhook_messages`;
  // Queued after the statistics were taken, as a backlog builds between two autovacuum runs.
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
    SELECT 'whatsapp', 'queued.' || g, '1555' || g % 500, 'k' || g % 500, '100', 'queued', jsonb_build_object('pad', repeat('x', 500))
    FROM generate_series(1, ${BACKLOG}) g`;
  // The worker claims under its shard fence: every shard recorded as this one's.
  await db.sql`INSERT INTO work_shard_owners (queue_prefix, shard, owner)
               SELECT ${FENCE.queuePrefix}, shard, ${FENCE.memberId} FROM generate_series(0, ${FENCE.shardCount - 1}) shard`;
  explained = await explainingClient(db.url, plans);
});

afterAll(async () => {
  await explained?.end({ timeout: 1 });
  await db?.drop();
});

function queueMessage(n: number): QueueMessage {
  return {
    v: 1, source: 'whatsapp', messageId: `queued.${n}`, from: `1555${n % 500}`, senderKey: `k${n % 500}`, business: '100',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { body: 'menu' },
  };
}

function menuReply(message: QueueMessage): DecisionWrite {
  return {
    source: 'whatsapp', messageId: message.messageId, senderKey: message.senderKey, recipient: message.from, business: '100',
    contactName: null, language: 'en', rememberLanguage: false, kind: 'menu', body: 'Our menu', order: null,
  };
}

/** Runs one batch through claim, decision, sending mark and settlement, and answers the plans of the three that touch webhook_messages. */
async function runBatch(first: number): Promise<{ claim: string; decision: string; settle: string }> {
  const messages = Array.from({ length: BATCH }, (_, index) => queueMessage(first + index));
  plans.length = 0;
  const claims = await claimMessages(explained, messages, FENCE);
  const claim = plans.join('\n');
  expect(claims.every((c) => typeof c === 'object' && c !== null)).toBe(true);

  plans.length = 0;
  const written = await writeDecisions(explained, messages.map(menuReply), FENCE);
  const decision = plans.join('\n');
  const replyIds = written.map((w) => w.reply!.id);
  await markSending(explained, replyIds.map((replyId) => ({ replyId, attempt: randomUUID(), unsentAttempts: [] })));

  plans.length = 0;
  await settleReplies(explained, replyIds.map((replyId, index) => ({
    replyId, status: 'sent' as const, providerMessageId: `wamid.out.${first + index}`, error: null, source: 'whatsapp' as const,
    finish: { messageId: messages[index]!.messageId, outcome: 'processed' as const },
  })));
  const settle = plans.join('\n');

  const [row] = await db.sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM webhook_messages WHERE message_id = ANY(${messages.map((m) => m.messageId)}) AND status = 'processed'`;
  expect(row!.n).toBe(BATCH);
  return { claim, decision, settle };
}

function expectReachedByUniqueKey(plan: string): void {
  expect(plan).toContain(UNIQUE_KEY_INDEX);
  expect(plan).not.toMatch(/webhook_messages_unfinished/);
  expect(plan).not.toMatch(/Seq Scan on webhook_messages/);
}

test('with stale statistics and a backlog, custom plans reach each message through the unique key', async () => {
  const { claim, decision, settle } = await runBatch(1);
  expectReachedByUniqueKey(claim);
  expectReachedByUniqueKey(decision);
  expectReachedByUniqueKey(settle);
});

test('so do the generic plans that prepared statements settle on', async () => {
  await explained`SET plan_cache_mode = force_generic_plan`;
  try {
    const { claim, decision, settle } = await runBatch(1 + BATCH);
    expectReachedByUniqueKey(claim);
    expectReachedByUniqueKey(decision);
    expectReachedByUniqueKey(settle);
  } finally {
    await explained`RESET plan_cache_mode`;
  }
});

test('the backlog count still reads only the unfinished messages, from their partial index alone', async () => {
  plans.length = 0;
  const backlog = await countBacklog(explained);
  expect(backlog).toBe(BACKLOG - 2 * BATCH);
  // Index-only: whether a message is parked (status, waiting_until) is in the index too, so a
  // backlog of any size is counted without reading its rows.
  expect(plans.join('\n')).toContain('Index Only Scan using webhook_messages_unfinished_ready_idx');
});
