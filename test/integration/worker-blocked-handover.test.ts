import { startPipeline, type Pipeline, callsTo as callsToRecipient } from '../support/pipeline';
import { resumeReaders, suspendConnection } from '../support/rabbitmqctl';
import { scrapeValue } from '../support/metrics';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A hand-over to a retry tier whose confirm does not come within PUBLISH_CONFIRM_TIMEOUT_MS
 * (the publishing connection blocked by an alarm): the worker holds the delivery and waits. It
 * used to give it back to the queue, so it came straight back: a second provider call at once,
 * against Retry-After, and after a few the broker's own dead-lettering without a reason.
 */
let pipeline: Pipeline;
let suspended: string[] = [];

beforeAll(async () => {
  pipeline = await startPipeline({ RETRY_DELAYS_MS: '100,600', PUBLISH_CONFIRM_TIMEOUT_MS: '300' });
  await pipeline.startWorker();
}, 120_000);

afterAll(async () => {
  await resumeReaders(suspended);
  await pipeline.stop();
});

const callsTo = (to: string) => callsToRecipient(pipeline, to);
const statusOf = async (id: string) =>
  (await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

it('holds a message whose hand-over is unconfirmed past the deadline, and calls the provider again only from its retry tier', async () => {
  const worker = pipeline.workers[0]!;
  const workerMetrics = `http://127.0.0.1:${worker.metricsPort}/metrics`;
  suspended = await suspendConnection(`wagate-worker publish ${worker.memberId}`);
  expect(suspended).toHaveLength(1);

  const failing = uniqueWamid();
  pipeline.fake.behave({ kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 1 }, 1);
  await postMetaText(pipeline.ingest.baseUrl, { id: failing, from: '15550310001', text: '1 coke' });
  await waitFor('the hand-over past its confirm deadline', async () => (await scrapeValue(workerMetrics, 'wagate_publish_failures_total')) >= 1, 60_000);
  // Another sender's message goes through meanwhile: the worker is busy, not stuck.
  const healthy = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id: healthy, from: '15550310002', text: '1 coke' });
  await waitFor('the other sender processed', async () => (await statusOf(healthy)) === 'processed', 60_000);
  expect(callsTo('15550310001')).toHaveLength(1);
  expect(await statusOf(failing)).toBe('processing');

  await resumeReaders(suspended);
  suspended = [];
  await waitFor('the retried message processed', async () => (await statusOf(failing)) === 'processed', 60_000);
  expect(callsTo('15550310001')).toHaveLength(2);
}, 240_000);
