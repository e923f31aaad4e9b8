import { startPipeline, callsTo, type Pipeline } from '../support/pipeline';
import { spawnWagate, type ChildIngest } from '../support/process';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * Postgres goes away (a restart, a failover) while a worker's provider call is under way, and
 * comes back some seconds later. The provider took the reply; the worker goes on trying to
 * write that down until Postgres is back, and the reply ends `sent` with its provider id.
 * Before, it gave up after about 2 s of tries, the message waited in a tier, and its next
 * attempt found the reply still 'sending' and marked it unknown, its provider id lost.
 */
const OUTAGE_MS = 5000;

let pipeline: Pipeline;
let proxy: TcpProxy;
let worker: ChildIngest | undefined;

beforeAll(async () => {
  pipeline = await startPipeline({ WORK_SHARDS: '1' });
  const through = await startProxyFor(pipeline.env.DATABASE_URL!, 5432);
  proxy = through.proxy;
  worker = await spawnWagate('worker', { ...pipeline.env, DATABASE_URL: through.url });
}, 60_000);

afterAll(async () => {
  worker?.child.kill('SIGKILL');
  await proxy?.close();
  await pipeline?.stop();
});

it('records a reply the provider took as sent, with its id, after a Postgres outage of some seconds during the call', async () => {
  const owner = async () => (await pipeline.db.sql<{ owner: string | null }[]>`
    SELECT owner FROM work_shard_owners WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!}`)[0]?.owner ?? null;
  await waitFor('the worker behind the proxy to hold the shard', async () => (await owner())?.includes(`-${worker!.child.pid}-`) ?? false, 30_000);

  const from = '15550810001';
  const id = uniqueWamid();
  pipeline.fake.behave({ kind: 'hold' }, 1);
  expect((await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' })).status).toBe(200);
  await waitFor('the provider call', () => callsTo(pipeline, from).length === 1, 30_000);

  // Postgres away: every connection reset, every new one refused; then the provider answers.
  proxy.setMode('refuse');
  const cutAt = performance.now();
  pipeline.fake.release();
  await waitFor('the worker to try Postgres again', () => proxy.refused() > 0, 10_000);
  await waitFor(`an outage of ${OUTAGE_MS} ms`, () => performance.now() - cutAt >= OUTAGE_MS, OUTAGE_MS + 5000);
  proxy.setMode('forward');

  await waitFor('the message to be processed', async () =>
    (await pipeline.db.sql`SELECT 1 FROM webhook_messages WHERE message_id = ${id} AND status = 'processed'`).length === 1, 60_000);
  const [call] = callsTo(pipeline, from);
  expect(await pipeline.db.sql`SELECT status, provider_message_id FROM outbound_messages WHERE inbound_message_id = ${id}`).toEqual([
    { status: 'sent', provider_message_id: call!.providerMessageId },
  ]);
  expect(callsTo(pipeline, from)).toHaveLength(1);
}, 120_000);
