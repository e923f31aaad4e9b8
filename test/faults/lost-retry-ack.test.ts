import amqp from 'amqplib';
import { requeueStuckMessages, stuckAfterMs } from '../../src/ledger/stuck';
import { TEST_AMQP_URL } from '../support/amqp';
import { callsTo, startPipeline, waitUntilOutOfOutbox, type Pipeline } from '../support/pipeline';
import { spawnWagate } from '../support/process';
import { waitFor } from '../support/wait';
import { postMetaText, uniqueWamid } from '../support/webhooks';

/**
 * A worker hands a failed message to its next retry tier (confirmed), then acks it. When that
 * ack is lost (the worker dies or its channel closes in between), the broker puts the original
 * back on its shard: it used to be processed again at once, calling the provider against its
 * Retry-After while the tier's copy waited, and a second failure sent a second copy to the
 * tiers. The record now names the try the tier's copy carries, and the claim skips the stale one.
 */
const TIER_MS = 10_000;
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ RETRY_DELAYS_MS: `${TIER_MS},60000` });
}, 120_000);

afterAll(async () => {
  await pipeline.stop();
});

const statusOf = async (id: string) => (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

it('skips the original of a try handed to a retry tier when its ack was lost, and the tier\'s copy calls the provider after the wait', async () => {
  const from = '15550930001';
  const id = uniqueWamid();
  const held = await spawnWagate('worker', { ...pipeline.env, WAGATE_FAILPOINT: 'worker.before-retry-ack' });
  try {
    pipeline.fake.behave({ kind: 'status', status: 503 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
    await waitFor('the worker between its confirmed hand-over and its ack', () => held.logs.some((entry) => entry.failpoint === 'worker.before-retry-ack'), 30_000);
  } finally {
    held.child.kill('SIGKILL');
    await held.exited;
  }
  // Its connection gone, the broker puts the original back on the shard, which a new worker takes.
  const worker = await pipeline.startWorker();
  await waitFor('the message processed', async () => (await statusOf(id)) === 'processed', 60_000);

  const calls = callsTo(pipeline, from);
  expect(calls).toHaveLength(2);
  // The second call is the tier's copy's, once its wait was over; the original was skipped.
  expect(calls[1]!.receivedAt - calls[0]!.receivedAt).toBeGreaterThanOrEqual(TIER_MS);
  const skipped = (await worker.metrics.workerMessages.get()).values.filter((value) => value.labels.outcome === 'skipped');
  expect(skipped.reduce((sum, value) => sum + value.value, 0)).toBe(1);
}, 120_000);

it('processes a stuck message requeued after its tier\'s copy was lost, though its record names a later try', async () => {
  const from = '15550930002';
  const id = uniqueWamid();
  if (pipeline.workers.length === 0) await pipeline.startWorker();
  pipeline.fake.behave({ kind: 'status', status: 503 }, 1);
  await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
  await waitFor('the message handed to its first tier', async () =>
    (await pipeline.db.sql`SELECT 1 FROM webhook_messages WHERE message_id = ${id} AND status = 'queued' AND retry_attempt = 1`).length > 0);
  // The tier's copy is lost (the broker's own dead-lettering is at most once) and, hours later,
  // the record counts as stuck: requeued, it goes out again without a try header.
  await pipeline.db.sql`UPDATE webhook_messages SET updated_at = now() - interval '3 hours' WHERE message_id = ${id}`;
  await purgeTier(0);
  expect(await requeueStuckMessages(pipeline.db.sql, stuckAfterMs(pipeline.ingest.config.RETRY_DELAYS_MS))).toBe(1);
  await waitFor('the requeued message processed', async () => (await statusOf(id)) === 'processed', 30_000);
  expect(callsTo(pipeline, from)).toHaveLength(2);
}, 60_000);

/** Empties a retry tier's queue, as if its copies were lost. */
async function purgeTier(index: number): Promise<void> {
  const connection = await amqp.connect(TEST_AMQP_URL);
  try {
    await (await connection.createChannel()).purgeQueue(pipeline.ingest.topology.retryTiers[index]!.queue);
  } finally {
    await connection.close();
  }
}

it('takes a copy without a try once the tier\'s wait is over, as a replay by a release that keeps the record\'s try sends', async () => {
  if (pipeline.workers.length === 0) await pipeline.startWorker();
  const from = '15550930003';
  const id = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
  await waitFor('the message processed', async () => (await statusOf(id)) === 'processed', 30_000);
  await waitUntilOutOfOutbox(pipeline.db, id);
  // Reopened and published again by a pod that clears the wait but not the try (0.3.5's replay).
  await pipeline.db.sql`UPDATE webhook_messages SET status = 'queued', retry_attempt = 3, waiting_until = NULL WHERE message_id = ${id}`;
  await pipeline.db.sql`INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() FROM webhook_messages WHERE message_id = ${id}`;
  await waitFor('the copy taken, and the message finished again', async () => (await statusOf(id)) === 'processed', 30_000);
  // Its reply was sent already: taken again, nothing is sent twice.
  expect(callsTo(pipeline, from)).toHaveLength(1);
}, 60_000);

it('takes a copy of a lower try while a release that does not name tries (0.3.5) has written the record\'s wait', async () => {
  if (pipeline.workers.length === 0) await pipeline.startWorker();
  const from = '15550930004';
  const id = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
  await waitFor('the message processed', async () => (await statusOf(id)) === 'processed', 30_000);
  await waitUntilOutOfOutbox(pipeline.db, id);
  // Its record keeps the try of an earlier life (3); a 0.3.5 worker handed it to a tier and wrote
  // only the wait, which ends a moment after its copy (of a lower try) comes back: computed after
  // the broker's confirm. Here the wait ends far later, and the copy goes out at once.
  await pipeline.db.sql`UPDATE webhook_messages SET status = 'queued', retry_attempt = 3, retry_attempt_until = NULL,
                          waiting_until = now() + interval '1 hour' WHERE message_id = ${id}`;
  await pipeline.db.sql`INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() FROM webhook_messages WHERE message_id = ${id}`;
  await waitFor('the copy taken, and the message finished again', async () => (await statusOf(id)) === 'processed', 30_000);
  expect(callsTo(pipeline, from)).toHaveLength(1);
}, 60_000);
