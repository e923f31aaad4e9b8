import { startPipeline, type Pipeline } from '../support/pipeline';
import { spawnWagate, type ChildIngest } from '../support/process';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A worker whose Postgres connections go dead without a reset (a failover that moves the
 * address, a dropped route): its statements are never answered, and no statement or connect
 * timeout ends them; TCP gives up after some 15 minutes. Meanwhile the worker stayed the
 * consumer of its shards' queues, so a worker that took the shards over got nothing, and its
 * /healthz said ok. Now /healthz fails once a statement has waited past four times the connect
 * and statement timeouts, so the kubelet restarts the pod, and the shards' messages go on.
 */
const LIVENESS_MS = 2000;
/** The stalled processes': the least limit there is, 4 × (1 s connect + 1 s statement) = 8 s to the failing /healthz. */
const STALLED_ENV = { DB_CONNECT_TIMEOUT_SECONDS: '1', DB_STATEMENT_TIMEOUT_MS: '1000', DB_STALL_LIMIT_MS: '1000', WORKER_DRAIN_TIMEOUT_MS: '2000' };

let pipeline: Pipeline;
let proxy: TcpProxy;
let stalled: ChildIngest | undefined;
let ingestProxy: TcpProxy | undefined;
let stalledIngest: ChildIngest | undefined;

beforeAll(async () => {
  pipeline = await startPipeline({ WORK_SHARDS: '1', WORKER_LIVENESS_TIMEOUT_MS: String(LIVENESS_MS) });
  const through = await startProxyFor(pipeline.env.DATABASE_URL!, 5432);
  proxy = through.proxy;
  stalled = await spawnWagate('worker', { ...pipeline.env, ...STALLED_ENV, DATABASE_URL: through.url });
}, 60_000);

afterAll(async () => {
  stalled?.child.kill('SIGKILL');
  stalledIngest?.child.kill('SIGKILL');
  await proxy?.close();
  await ingestProxy?.close();
  await pipeline?.stop();
});

const healthOf = async (worker: ChildIngest, url = worker.metricsUrl.replace('/metrics', '/healthz')) => {
  const answer = await fetch(url);
  return { status: answer.status, body: (await answer.json()) as Record<string, unknown> };
};

const statusOf = async (messageId: string) =>
  (await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${messageId}`)[0]?.status;

it('fails its liveness once Postgres leaves a statement unanswered, and once restarted its shard\'s messages go on', async () => {
  const owner = async () => (await pipeline.db.sql<{ owner: string | null }[]>`
    SELECT owner FROM work_shard_owners WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!}`)[0]?.owner ?? null;
  await waitFor('the worker behind the proxy to hold the shard', async () => (await owner())?.includes(`-${stalled!.child.pid}-`) ?? false, 30_000);
  expect(await healthOf(stalled!)).toEqual({ status: 200, body: { status: 'ok' } });

  // Open connections stay open, and nothing gets through them any more.
  proxy.setMode('blackhole');
  const messageId = uniqueWamid();
  expect((await postMetaText(pipeline.ingest.baseUrl, { id: messageId, from: '15550800001', text: '1 coke' })).status).toBe(200);
  await waitFor('the stalled worker\'s /healthz to fail', async () => (await healthOf(stalled!)).status === 503, 30_000);
  expect((await healthOf(stalled!)).body).toEqual({ status: 'stalled', waitingFor: expect.any(String), waitingMs: expect.any(Number) });
  // Written when the stall is first seen; its line comes through the process's stdout, which may
  // reach the test after the 503 does.
  const stallLines = () => stalled!.logs.filter((entry) => entry.level === 50 && String(entry.msg).startsWith('Postgres has not answered'));
  await waitFor('the stall logged', () => stallLines().length > 0, 10_000);
  expect(stallLines()).toHaveLength(1);

  // Another worker takes the shard record once the stalled one's heartbeat has expired, but
  // the queue's single active consumer is still the stalled worker: the message waits.
  const survivor = await pipeline.startWorker();
  await waitFor('the survivor to take the shard record', async () => (await owner()) === survivor.memberId, LIVENESS_MS + 20_000);
  expect(await statusOf(messageId)).toBe('queued');

  // The kubelet restarts the container that fails its liveness: SIGTERM, a bounded drain.
  stalled!.child.kill('SIGTERM');
  expect(await stalled!.exited).toBe(0);
  // Within a retry tier's wait, should its claim have failed on a new connection instead.
  await waitFor('the message to be processed by the survivor', async () => (await statusOf(messageId)) === 'processed', 60_000);
  const [order] = await pipeline.db.sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM orders WHERE message_id = ${messageId}`;
  expect(order!.n).toBe(1);
}, 120_000);

it('fails an ingest\'s liveness once a commit waits on a dead connection', async () => {
  const through = await startProxyFor(pipeline.env.DATABASE_URL!, 5432);
  ingestProxy = through.proxy;
  stalledIngest = await spawnWagate('ingest', { ...pipeline.env, ...STALLED_ENV, DATABASE_URL: through.url });
  const healthz = `${stalledIngest.baseUrl}/healthz`;
  expect(await healthOf(stalledIngest, healthz)).toEqual({ status: 200, body: { status: 'ok' } });

  ingestProxy.setMode('blackhole');
  // Answered 503 at the commit's deadline (1 s statement timeout + 2 s), the commit left waiting.
  expect((await postMetaText(stalledIngest.baseUrl, { id: uniqueWamid(), from: '15550800002', text: '1 coke' })).status).toBe(503);
  await waitFor('the stalled ingest\'s /healthz to fail', async () => (await healthOf(stalledIngest!, healthz)).status === 503, 30_000);
  expect((await healthOf(stalledIngest, healthz)).body).toEqual({ status: 'stalled', waitingFor: expect.any(String), waitingMs: expect.any(Number) });
}, 60_000);
