import { startPipeline, type Pipeline, callsTo as callsToRecipient } from '../support/pipeline';
import { resumeReaders, suspendConnection } from '../support/rabbitmqctl';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A hand-over holds its delivery while the broker is blocked, but no longer than the worker's
 * drain timeout: a shard's release and a stopping worker wait for it. Then the delivery goes
 * back to its queue, and comes back to be tried again.
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

it('gives a held hand-over back to its queue after the drain timeout while the broker stays blocked', async () => {
  const worker = pipeline.workers[0]!;
  suspended = await suspendConnection(`wagate-worker publish ${worker.memberId}`);
  expect(suspended).toHaveLength(1);
  pipeline.fake.behave({ kind: 'status', status: 429, retryAfterSeconds: 1 }, 1);
  await postMetaText(pipeline.ingest.baseUrl, { id: uniqueWamid(), from: '15550320001', text: '1 coke' });
  // The first call is refused; the hand-over is held, then given back, and the message comes
  // back and is sent while the publishing connection is still blocked.
  await waitFor('the message tried again after the hold', () => callsTo('15550320001').length === 2, 60_000);
  const [first, second] = callsTo('15550320001');
  expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(DRAIN_TIMEOUT_MS);
}, 120_000);
