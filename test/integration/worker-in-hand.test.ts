import { startPipeline, type Pipeline } from '../support/pipeline';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * The queue's ready count leaves out what the workers have received and not yet acked, which
 * the prefetch makes hundreds a worker: WagateWorkerLag adds wagate_worker_messages_in_hand.
 */
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline();
  await pipeline.startWorker();
}, 60_000);

afterAll(async () => {
  pipeline.fake.release();
  await pipeline?.stop();
});

const inHand = async () => (await pipeline.workers[0]!.metrics.workerMessagesInHand.get()).values[0]?.value;
const statusOf = async (id: string) => (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

it('counts the messages being processed and those waiting behind their sender\'s, until each is acked', async () => {
  expect(await inHand()).toBe(0);
  // Two senders' confirmations wait in the provider call; the first sender's second message
  // waits behind its first.
  pipeline.fake.behave({ kind: 'hold' }, 2);
  const ids = [uniqueWamid(), uniqueWamid(), uniqueWamid()];
  await postMetaText(pipeline.ingest.baseUrl, { id: ids[0]!, from: '15550600001', text: '1 coke' });
  await postMetaText(pipeline.ingest.baseUrl, { id: ids[1]!, from: '15550600002', text: '1 coke' });
  await waitFor('both confirmations in the provider call', () => pipeline.fake.calls().length >= 2);
  await postMetaText(pipeline.ingest.baseUrl, { id: ids[2]!, from: '15550600001', text: '2 coke' });
  await waitFor('the third message in hand', async () => (await inHand()) === 3);
  expect(await statusOf(ids[2]!)).toBe('queued');
  pipeline.fake.release();
  await waitFor('every message processed', async () => (await Promise.all(ids.map(statusOf))).every((status) => status === 'processed'));
  await waitFor('nothing in hand', async () => (await inHand()) === 0);
});
