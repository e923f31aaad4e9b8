import { deliverReply } from '../../src/orders/deliver-reply';
import type { OutboundRow } from '../../src/orders/record-decision';
import { writeDecisions } from '../../src/orders/write-decisions';
import type { ReplyTarget, SendOutcome } from '../../src/replies/reply-clients';
import { createMetrics } from '../../src/telemetry/metrics';
import { counterValue } from '../support/in-process';
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
    const result = await deliverReply(pipeline.db.sql, 'whatsapp', reply, provider, createMetrics('test'), { mayCall: () => false });
    expect(result).toBe('given_back');
    expect(await stateOf(reply)).toEqual({ status: 'pending', attempts: 0 });
    expect(calls).toHaveLength(0);
  });

  it('is not started, and the mark is undone, when the lease ran short during the mark', async () => {
    const reply = await replyFor('15550710002');
    const answers = [true, false];
    const result = await deliverReply(pipeline.db.sql, 'whatsapp', reply, provider, createMetrics('test'), { mayCall: () => answers.shift()! });
    expect(result).toBe('given_back');
    // Not 'sending': the next worker sends it, instead of taking its fate for unknown.
    expect(await stateOf(reply)).toEqual({ status: 'pending', attempts: 0 });
    expect(calls).toHaveLength(0);
  });

  it('is made within the lease', async () => {
    const reply = await replyFor('15550710003');
    const result = await deliverReply(pipeline.db.sql, 'whatsapp', reply, provider, createMetrics('test'), { mayCall: () => true });
    expect(result).toBe('sent');
    expect(await stateOf(reply)).toEqual({ status: 'sent', attempts: 1 });
    expect(calls.map((call) => call.to)).toEqual(['15550710003']);
  });
});

it('gives a message back unclaimed while its heartbeats stall past the lease, and processes it once they go through again', async () => {
  const worker = await pipeline.startWorker();
  await waitFor('the worker to hold every shard', () => worker.coordinator.owned().length === 4);
  // Its heartbeats wait on the lock, as they would on a Postgres out of its reach.
  let unlock!: () => void;
  const unlocked = new Promise<void>((resolve) => (unlock = resolve));
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const holding = pipeline.db.sql.begin(async (tx) => {
    await tx`SELECT 1 FROM worker_members WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!} AND member_id = ${worker.memberId} FOR UPDATE`;
    locked();
    await unlocked;
  });
  const from = '15550710004';
  const id = uniqueWamid();
  try {
    await isLocked;
    await waitFor('the lease to run out', () => worker.coordinator.leaseLeftMs() <= 0, 30_000);
    await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
    await waitFor('the message given back', async () => (await counterValue(worker.metrics, 'wagate_worker_messages_total', { outcome: 'given_back' })) >= 1, 30_000);
    const [row] = await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`;
    expect(row!.status).toBe('queued');
    expect(callsTo(pipeline, from)).toHaveLength(0);
  } finally {
    unlock();
    await holding;
  }
  await waitFor('the message processed once the heartbeats go through', async () => {
    const [row] = await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`;
    return row!.status === 'processed';
  }, 60_000);
  expect(callsTo(pipeline, from)).toHaveLength(1);
}, 120_000);
