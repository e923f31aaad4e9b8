import { startPipeline, callsTo as callsToRecipient, type Pipeline } from '../support/pipeline';
import { scrapeValue } from '../support/metrics';
import { resumeReaders, suspendConnection } from '../support/rabbitmqctl';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A hand-over holds its delivery while the broker is blocked for as long as the worker runs:
 * given back, the message would come straight back and call the provider again, against its
 * Retry-After, and after a few deliveries the broker would dead-letter it without a reason. The
 * drain timeout bounds the hold only once the worker stops (or lets go of the shard), since the
 * stop waits for it; then the delivery goes back to its queue for the next worker.
 */
const DRAIN_TIMEOUT_MS = 1500;
let pipeline: Pipeline;
let suspended: string[] = [];

beforeAll(async () => {
  pipeline = await startPipeline({ RETRY_DELAYS_MS: '100,600', PUBLISH_CONFIRM_TIMEOUT_MS: '300', WORKER_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS) });
  await pipeline.startWorker();
}, 120_000);

afterAll(async () => {
  await resumeReaders(suspended);
  await pipeline.stop();
});

const callsTo = (to: string) => callsToRecipient(pipeline, to);
const recordOf = async (id: string) =>
  (await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

it('holds a blocked hand-over past the drain timeout while running, and gives it back within the timeout once stopping', async () => {
  const worker = pipeline.workers[0]!;
  const workerMetrics = `http://127.0.0.1:${worker.metricsPort}/metrics`;
  suspended = await suspendConnection(`wagate-worker publish ${worker.memberId}`);
  expect(suspended).toHaveLength(1);
  pipeline.fake.behave({ kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 1 }, 1);
  const held = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id: held, from: '15550320001', text: '1 coke' });
  await waitFor('the hand-over past its confirm deadline', async () => (await scrapeValue(workerMetrics, 'wagate_publish_failures_total')) >= 1, 60_000);
  const heldAt = Date.now();

  // Three drain timeouts later the message is still in hand: it was not given back to come
  // straight back (which took one drain timeout before), and the worker goes on with others.
  const others: string[] = [];
  while (Date.now() - heldAt < 3 * DRAIN_TIMEOUT_MS) {
    const other = uniqueWamid();
    others.push(other);
    await postMetaText(pipeline.ingest.baseUrl, { id: other, from: `1555033${String(others.length).padStart(4, '0')}`, text: '1 coke' });
    await waitFor('another sender processed', async () => (await recordOf(other)) === 'processed', 60_000);
  }
  expect(callsTo('15550320001')).toHaveLength(1);
  expect(await recordOf(held)).toBe('processing');

  // Stopping gives it back within the drain timeout, though the broker is still blocked.
  await pipeline.workers.splice(0, 1)[0]!.stop();
  await resumeReaders(suspended);
  suspended = [];
  await pipeline.startWorker();
  await waitFor('the held message processed by the next worker', async () => (await recordOf(held)) === 'processed', 60_000);
  expect(callsTo('15550320001')).toHaveLength(2);
}, 240_000);
