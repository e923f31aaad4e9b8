import { deliverReply } from '../../src/orders/deliver-reply';
import type { OutboundRow } from '../../src/orders/record-decision';
import { writeDecisions } from '../../src/orders/write-decisions';
import { shardOf } from '../../src/queue/topology';
import type { ReplyTarget, SendOutcome } from '../../src/replies/reply-clients';
import { createMetrics } from '../../src/telemetry/metrics';
import { counterValue } from '../support/in-process';
import { holdInTransaction, stallHeartbeats } from '../support/database';
import { callsTo, startPipeline, type Pipeline } from '../support/pipeline';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A worker claims and sends only while its shards cannot have passed to another worker: the
 * liveness timeout counted from its last heartbeat that went through. One whose heartbeats
 * stall (Postgres out of its reach, its member row locked) gives its messages back instead of
 * starting them, and does not start a provider call that could outlast its lease.
 */
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline();
});

afterAll(async () => {
  await pipeline.stop();
});

async function replyFor(from: string): Promise<OutboundRow> {
  const messageId = uniqueWamid();
  await pipeline.db.sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, status)
                        VALUES ('whatsapp', ${messageId}, ${from}, ${from}, 'processing')`;
  const [written] = await writeDecisions(pipeline.db.sql, [{
    source: 'whatsapp', messageId, senderKey: from, recipient: from, business: '106540352242922',
    contactName: null, language: 'en', rememberLanguage: false, kind: 'menu', body: 'Our menu', order: null,
  }]);
  return written!.reply!;
}

async function statusOf(messageId: string): Promise<string | undefined> {
  const [row] = await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${messageId}`;
  return row?.status;
}

async function stateOf(reply: OutboundRow): Promise<{ status: string; attempts: number }> {
  const [row] = await pipeline.db.sql<{ status: string; attempts: number }[]>`SELECT status, attempts FROM outbound_messages WHERE id = ${reply.id}`;
  return row!;
}

describe('a provider call outside the lease', () => {
  const calls: ReplyTarget[] = [];
  const provider = async (target: ReplyTarget): Promise<SendOutcome> => {
    calls.push(target);
    return { kind: 'sent', providerMessageId: `wamid.out.${calls.length}` };
  };

  it('is not started, and the reply stays as it was, when the lease is short before the mark', async () => {
    const reply = await replyFor('15550710001');
    const result = await deliverReply(pipeline.db.sql, 'whatsapp', reply, provider, createMetrics('test'), { mayCall: async () => false });
    expect(result).toBe('given_back');
    expect(await stateOf(reply)).toEqual({ status: 'pending', attempts: 0 });
    expect(calls).toHaveLength(0);
  });

  it('is not started, and the mark is undone, when the lease ran short during the mark', async () => {
    const reply = await replyFor('15550710002');
    const answers = [true, false];
    const result = await deliverReply(pipeline.db.sql, 'whatsapp', reply, provider, createMetrics('test'), { mayCall: async () => answers.shift()! });
    expect(result).toBe('given_back');
    // Not 'sending': the next worker sends it, instead of taking its fate for unknown.
    expect(await stateOf(reply)).toEqual({ status: 'pending', attempts: 0 });
    expect(calls).toHaveLength(0);
  });

  it('leaves a reply marked from retry sendable as retry, whatever status was read before the mark', async () => {
    const reply = await replyFor('15550710005');
    await pipeline.db.sql`UPDATE outbound_messages SET status = 'retry', attempts = 1 WHERE id = ${reply.id}`;
    const answers = [true, false];
    // Read as 'sending' by a copy that came while another attempt held it, which has since put it back to 'retry'.
    const result = await deliverReply(pipeline.db.sql, 'whatsapp', { ...reply, status: 'sending' }, provider, createMetrics('test'), { mayCall: async () => answers.shift()! });
    expect(result).toBe('given_back');
    expect(await stateOf(reply)).toEqual({ status: 'retry', attempts: 1 });
    expect(calls).toHaveLength(0);
  });

  it('is made within the lease', async () => {
    const reply = await replyFor('15550710003');
    const result = await deliverReply(pipeline.db.sql, 'whatsapp', reply, provider, createMetrics('test'), { mayCall: async () => true });
    expect(result).toBe('sent');
    expect(await stateOf(reply)).toEqual({ status: 'sent', attempts: 1 });
    expect(calls.map((call) => call.to)).toEqual(['15550710003']);
  });
});

it('gives a message back unclaimed while its heartbeats stall past the lease, and processes it once they go through again', async () => {
  const worker = await pipeline.startWorker();
  await waitFor('the worker to hold every shard', () => worker.coordinator.owned().length === 4);
  // Its heartbeats wait on the lock, as they would on a Postgres out of its reach.
  const member = stallHeartbeats(pipeline.db.sql, pipeline.env.QUEUE_PREFIX!, worker.memberId);
  const from = '15550710004';
  const id = uniqueWamid();
  try {
    await member.held;
    await waitFor('the lease to run out', () => worker.coordinator.lease().leftMs <= 0, 30_000);
    await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
    await waitFor('the message given back', async () => (await counterValue(worker.metrics, 'wagate_worker_messages_total', { outcome: 'given_back' })) >= 1, 30_000);
    expect(await statusOf(id)).toBe('queued');
    expect(callsTo(pipeline, from)).toHaveLength(0);
  } finally {
    await member.release();
  }
  await waitFor('the message processed once the heartbeats go through', async () => (await statusOf(id)) === 'processed', 60_000);
  expect(callsTo(pipeline, from)).toHaveLength(1);
}, 120_000);

it('sends nothing for a message claimed before its heartbeats stalled past the lease, once they go through again and the shard is another\'s', async () => {
  for (const running of pipeline.workers.splice(0)) await running.stop();
  // The held decision write must not time out meanwhile, however slow the machine.
  const first = await pipeline.startWorker({ DB_STATEMENT_TIMEOUT_MS: '120000' });
  const second = await pipeline.startWorker({ DB_STATEMENT_TIMEOUT_MS: '120000' });
  await waitFor('the two workers to share the shards', () => first.coordinator.owned().length === 2 && second.coordinator.owned().length === 2);
  const shard = first.coordinator.owned()[0]!;
  const from = Array.from({ length: 200 }, (_, n) => `1555072${String(n).padStart(4, '0')}`).find((number) => shardOf(number, 4) === shard)!;
  // The first worker's decision write waits on the orders table, so the message stays claimed in its hands.
  const orders = holdInTransaction(pipeline.db.sql, (tx) => tx`LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE`);
  await orders.held;
  const id = uniqueWamid();
  try {
    await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
    await waitFor('the message claimed by the first worker', async () => (await statusOf(id)) === 'processing', 30_000);
    // Its heartbeats stall until the second worker has taken the shard, then go through again.
    const member = stallHeartbeats(pipeline.db.sql, pipeline.env.QUEUE_PREFIX!, first.memberId);
    await member.held;
    await waitFor('the second worker to take the shard', () => second.coordinator.owned().includes(shard), 30_000);
    await member.release();
    // A heartbeat sent after the lock went, so its lease has nearly the whole liveness timeout left.
    await waitFor('the first worker\'s heartbeats through again', () => first.coordinator.lease().leftMs > 1500, 30_000);
  } finally {
    await orders.release();
  }
  // Whichever worker holds the shard once the dust settles processes it (the first may get it
  // back under its new tenure); what matters is that the work begun before the gap made no call.
  const processed = async () => (await Promise.all([first, second].map((worker) =>
    counterValue(worker.metrics, 'wagate_worker_messages_total', { outcome: 'processed' })))).reduce((sum, n) => sum + n, 0);
  await waitFor('the message processed', async () => (await processed()) === 1, 60_000);
  expect(await counterValue(first.metrics, 'wagate_worker_messages_total', { outcome: 'given_back' })).toBeGreaterThanOrEqual(1);
  expect(callsTo(pipeline, from)).toHaveLength(1);
  const [reply] = await pipeline.db.sql<{ attempts: number; status: string }[]>`
    SELECT o.attempts, o.status FROM outbound_messages o WHERE o.inbound_message_id = ${id}`;
  // One mark and one call: the first worker's old-tenure work never marked it.
  expect(reply).toEqual({ attempts: 1, status: 'sent' });
}, 180_000);

it('writes no decision for a message whose lease ran out while it was decided, and gives it back', async () => {
  for (const running of pipeline.workers.splice(0)) await running.stop();
  // The held match must not time out meanwhile, however slow the machine.
  const worker = await pipeline.startWorker({ DB_STATEMENT_TIMEOUT_MS: '120000' });
  await waitFor('the worker to hold every shard', () => worker.coordinator.owned().length === 4);
  const from = '15550710009';
  const id = uniqueWamid();
  const orders = async () => (await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).length;
  // The match of its text waits on the catalog, so the message stays claimed and undecided.
  const products = holdInTransaction(pipeline.db.sql, (tx) => tx`LOCK TABLE products IN ACCESS EXCLUSIVE MODE`);
  await products.held;
  const member = stallHeartbeats(pipeline.db.sql, pipeline.env.QUEUE_PREFIX!, worker.memberId);
  try {
    await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
    await waitFor('the message claimed', async () => (await statusOf(id)) === 'processing', 30_000);
    await member.held;
    await waitFor('the lease to run out', () => worker.coordinator.lease().leftMs <= 0, 30_000);
    await products.release();
    await waitFor('the message given back', async () => (await counterValue(worker.metrics, 'wagate_worker_messages_total', { outcome: 'given_back' })) >= 1, 30_000);
    // Decided, but not written: another worker may hold the shard by now.
    expect(await orders()).toBe(0);
  } finally {
    await products.release();
    await member.release();
  }
  await waitFor('the message processed once the heartbeats go through', async () => (await statusOf(id)) === 'processed', 60_000);
  expect(await orders()).toBe(1);
  expect(callsTo(pipeline, from)).toHaveLength(1);
}, 120_000);
