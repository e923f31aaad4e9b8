import { shardOf } from '../../src/queue/topology';
import { callsTo, startPipeline, type Pipeline } from '../support/pipeline';
import { sendRounds } from '../support/scale-out';
import { waitFor } from '../support/wait';

/**
 * A worker that finds one of its shards taken over closes that shard's channel, so that its
 * unstarted messages go back to the new owner in order. Its other shards must not pay for it:
 * when all shards shared one channel, their prefetched messages went back too, each counted as
 * delivered once more (and the whole connection was made again). With a delivery limit of 2
 * such a message is dead-lettered at its next delivery, so a message given back shows.
 */
const SHARDS = 4;
const PROVIDER_MS = 400;
const MESSAGES = 8;
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ WORK_SHARDS: String(SHARDS), QUEUE_DELIVERY_LIMIT: '2' });
  await pipeline.startWorker();
}, 120_000);

afterAll(async () => {
  await pipeline.stop();
});

const released = async () =>
  (await pipeline.workers[0]!.metrics.rebalances.get()).values.find((value) => value.labels.direction === 'released')?.value ?? 0;

it('keeps the other shards\' messages in hand, undelivered again, when one shard is taken over', async () => {
  const worker = pipeline.workers[0]!;
  expect(worker.coordinator.owned()).toHaveLength(SHARDS);
  const candidates = Array.from({ length: 100 }, (_, n) => `1555063${String(n).padStart(4, '0')}`);
  const sender = candidates[0]!;
  const takenShard = (shardOf(sender, SHARDS) + 1) % SHARDS;
  const consumingChannel = worker.broker.channel();
  pipeline.fake.behave({ kind: 'delay', ms: PROVIDER_MS });

  // One sender's messages run one after another, so most of them wait in the worker's hand.
  const sent = await sendRounds(pipeline.ingest.baseUrl, [sender], Array.from({ length: MESSAGES }, (_, n) => `${n + 1} coke`));
  await waitFor('the first reply to be under way', () => callsTo(pipeline, sender).length >= 1);
  await pipeline.db.sql`
    UPDATE work_shard_owners SET owner = 'another-worker'
    WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!} AND shard = ${takenShard}`;
  await waitFor('the taken shard to be let go', async () => (await released()) >= 1);
  // Otherwise the take-over came too late to prove anything.
  expect(callsTo(pipeline, sender).length).toBeLessThan(MESSAGES);

  await waitFor('every message of the sender finished', async () => {
    const [row] = await pipeline.db.sql<{ n: number }[]>`
      SELECT count(*)::integer AS n FROM webhook_messages
      WHERE message_id = ANY(${sent.get(sender)!}) AND status NOT IN ('queued', 'processing')`;
    return row!.n === MESSAGES;
  }, 60_000);
  const statuses = await pipeline.db.sql<{ status: string }[]>`
    SELECT status FROM webhook_messages WHERE message_id = ANY(${sent.get(sender)!})`;
  expect(statuses.map((row) => row.status)).toEqual(Array(MESSAGES).fill('processed'));
  expect(callsTo(pipeline, sender)).toHaveLength(MESSAGES);
  // The consuming connection was not made again: it would have come with a new topology channel.
  expect(worker.broker.channel()).toBe(consumingChannel);
}, 120_000);
