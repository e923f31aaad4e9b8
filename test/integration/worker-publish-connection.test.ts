import { startPipeline, type Pipeline, callsTo as callsToRecipient } from '../support/pipeline';
import { connectionNames, resumeReaders, suspendConnection } from '../support/rabbitmqctl';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

let pipeline: Pipeline;
let suspended: string[] = [];

beforeAll(async () => {
  // A confirm timeout far beyond the test, so that no deadline passes here (a hand-over past it
  // stays held too: test/integration/worker-blocked-handover.test.ts).
  pipeline = await startPipeline({ RETRY_DELAYS_MS: '100,600', PUBLISH_CONFIRM_TIMEOUT_MS: '120000', OUTBOX_LEASE_SECONDS: '180' });
  await pipeline.startWorker();
}, 120_000);

afterAll(async () => {
  await resumeReaders(suspended);
  await pipeline.stop();
});

const callsTo = (to: string) => callsToRecipient(pipeline, to);
const statusOf = async (id: string) =>
  (await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

describe('worker broker connections', () => {
  it('keeps consuming while its publishing connection is blocked, and hands over once it is not', async () => {
    const worker = pipeline.workers[0]!;
    const consuming = `wagate-worker consume ${worker.memberId}`;
    const publishing = `wagate-worker publish ${worker.memberId}`;
    expect(await connectionNames()).toEqual(expect.arrayContaining([consuming, publishing]));

    // The broker stops reading the publishing connection, as a memory alarm would.
    suspended = await suspendConnection(publishing);
    expect(suspended).toHaveLength(1);

    const failing = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 503 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id: failing, from: '15550300001', text: '1 coke' });
    await waitFor('the failing reply attempt', () => callsTo('15550300001').length === 1, 60_000);

    // Another sender's message is consumed, processed and acked meanwhile.
    const healthy = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: healthy, from: '15550300002', text: '1 coke' });
    await waitFor('the other sender processed', async () => (await statusOf(healthy)) === 'processed', 60_000);
    // The failed message's hand-over went out on the blocked connection, so it has not come
    // back from its 100 ms retry tier: no second attempt yet.
    expect(callsTo('15550300001')).toHaveLength(1);
    expect(await statusOf(failing)).toBe('processing');

    await resumeReaders(suspended);
    suspended = [];
    await waitFor('the retried message processed', async () => (await statusOf(failing)) === 'processed', 60_000);
    expect(callsTo('15550300001')).toHaveLength(2);
  }, 240_000);
});
