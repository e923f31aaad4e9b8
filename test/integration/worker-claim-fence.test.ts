import { shardOf } from '../../src/queue/topology';
import { claimMessages, NOT_OURS } from '../../src/worker/claim-messages';
import type { QueueMessage } from '../../src/queue/message';
import { openQueueProbe, type QueueProbe } from '../support/amqp';
import { callsTo, startPipeline, type Pipeline } from '../support/pipeline';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';
import { counterValue } from '../support/in-process';

/**
 * A worker claims a message only while the message's shard is recorded as its own. One cut
 * off from Postgres past its liveness timeout has its shards taken over; once back, it must not
 * start the messages it held meanwhile, since the new owner may already run their senders'
 * next ones: they go back to the queue instead.
 */
let pipeline: Pipeline;
let probe: QueueProbe;

beforeAll(async () => {
  pipeline = await startPipeline();
  probe = await openQueueProbe();
});

afterAll(async () => {
  await probe.close();
  await pipeline.stop();
});

const prefix = () => pipeline.env.QUEUE_PREFIX!;
const SHARDS = 4;

function queued(from: string): QueueMessage {
  return {
    v: 1, source: 'whatsapp', messageId: uniqueWamid(), from, senderKey: from, business: '106540352242922', contactName: null,
    type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { text: { body: '1 coke' } },
  };
}

async function statusOf(messageId: string): Promise<string | undefined> {
  const [row] = await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${messageId}`;
  return row?.status;
}

it('claims for its owner only, and answers NOT_OURS for a shard another worker holds, leaving the message queued', async () => {
  const ours = queued('15550700001');
  const theirs = queued('15550700002');
  const [ourShard, theirShard] = [shardOf(ours.senderKey, SHARDS), shardOf(theirs.senderKey, SHARDS)];
  expect(ourShard).not.toBe(theirShard);
  for (const m of [ours, theirs]) {
    await pipeline.db.sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, status)
                          VALUES (${m.source}, ${m.messageId}, ${m.from}, ${m.senderKey}, 'queued')`;
  }
  const fencePrefix = `${prefix()}-fence`;
  await pipeline.db.sql`INSERT INTO work_shard_owners (queue_prefix, shard, owner)
                        VALUES (${fencePrefix}, ${ourShard}, 'worker-a'), (${fencePrefix}, ${theirShard}, 'worker-b')`;

  const claims = await claimMessages(pipeline.db.sql, [ours, theirs], { queuePrefix: fencePrefix, memberId: 'worker-a', shardCount: SHARDS });
  expect(claims[0]).toMatchObject({ reply: null });
  expect(claims[1]).toBe(NOT_OURS);
  expect(await statusOf(ours.messageId)).toBe('processing');
  expect(await statusOf(theirs.messageId)).toBe('queued');
});

it('gives a delivery of a shard taken over from it back to the queue unprocessed', async () => {
  // Rounds a minute apart: the worker learns of the takeover only at its claim, as one
  // whose group reads failed while Postgres was out of its reach.
  const worker = await pipeline.startWorker({ WORKER_HEARTBEAT_MS: '60000', WORKER_LIVENESS_TIMEOUT_MS: '180000' });
  // A round asked for while one runs joins it, and the next is a minute away: ask until it holds them.
  await waitFor('the worker to hold every shard', async () => {
    await worker.coordinator.tick();
    return worker.coordinator.owned().length === SHARDS;
  });
  const from = '15550700003';
  const shard = shardOf(from, SHARDS);
  // Another worker took the shard over, as one does once this worker's heartbeat lapsed.
  await pipeline.db.sql`UPDATE work_shard_owners SET owner = 'the-worker-that-took-it-over'
                        WHERE queue_prefix = ${prefix()} AND shard = ${shard}`;

  const id = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
  const queue = pipeline.ingest.topology.shards[shard]!.queue;
  await waitFor('the message back in its shard queue', async () => (await probe.readyCount(queue)) === 1, 30_000);
  expect(await statusOf(id)).toBe('queued');
  expect(callsTo(pipeline, from)).toHaveLength(0);
  expect(await counterValue(worker.metrics, 'wagate_worker_messages_total', { outcome: 'given_back' })).toBe(1);

  // The shards it still holds go on as before.
  const other = Array.from({ length: 40 }, (_, i) => `155507001${String(i).padStart(2, '0')}`).find((n) => shardOf(n, SHARDS) !== shard)!;
  const otherId = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id: otherId, from: other, text: '1 coke' });
  await waitFor('a message of another shard processed', async () => (await statusOf(otherId)) === 'processed', 30_000);
  expect(await statusOf(id)).toBe('queued');
}, 90_000);
