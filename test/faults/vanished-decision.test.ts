import { startPipeline, type Pipeline } from '../support/pipeline';
import { spawnWagate, type ChildIngest } from '../support/process';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A worker gone in the middle of a decision's transaction without a reset (its node lost, its
 * network cut): Postgres keeps its session idle in transaction, with the share lock on its shard
 * record, until the server's TCP keepalive gives up, two hours by default. Every other worker's
 * take of that shard waited on the lock meanwhile, and the shard's messages on nobody. A
 * stopped process (SIGSTOP) plays that worker: its sockets stay open and nothing more comes.
 */
const WORKERS = { WORK_SHARDS: '2', WORKER_HEARTBEAT_MS: '200', WORKER_LIVENESS_TIMEOUT_MS: '1500' };

let pipeline: Pipeline;
let vanished: ChildIngest | undefined;

beforeAll(async () => {
  pipeline = await startPipeline(WORKERS);
}, 60_000);

afterAll(async () => {
  vanished?.child.kill('SIGKILL');
  await vanished?.exited;
  await pipeline?.stop();
});

/**
 * Sessions of this test's database that Postgres ended with a fatal error: a session idle in
 * a transaction past its limit is one. Counted rather than watching the session sit idle: on a
 * busy machine the failpoint's log line can reach the test after the limit has already ended it.
 */
const sessionsEndedByPostgres = async () =>
  (await pipeline.db.sql<{ count: number }[]>`
    SELECT sessions_fatal::integer AS count FROM pg_stat_database WHERE datname = current_database()`)[0]!.count;

/** Sessions of worker pools in this test's database that sit idle inside a transaction. */
const idleInTransaction = async () =>
  (await pipeline.db.sql<{ count: number }[]>`
    SELECT count(*)::integer AS count FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'wagate-worker' AND state LIKE 'idle in transaction%'`)[0]!.count;

it('ends the session of a worker gone inside a decision, so another worker takes its shards', async () => {
  vanished = await spawnWagate('worker', { ...pipeline.env, WAGATE_FAILPOINT: 'worker.in-decision', WAGATE_FAILPOINT_ACTION: 'pause' });
  const owners = async () => (await pipeline.db.sql<{ owner: string | null }[]>`
    SELECT owner FROM work_shard_owners WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!}`).map((row) => row.owner);
  await waitFor('the worker to hold both shards', async () => {
    const held = await owners();
    return held.length === 2 && held.every((owner) => owner?.includes(`-${vanished!.child.pid}-`));
  }, 30_000);

  // A cancel reads and changes the customer's orders: it takes the decision's transaction.
  const endedBefore = await sessionsEndedByPostgres();
  expect((await postMetaText(pipeline.ingest.baseUrl, { id: uniqueWamid(), from: '15550810001', text: 'cancel' })).status).toBe(200);
  await waitFor('the worker stopped inside the decision', () => vanished!.logs.some((entry) => entry.failpoint === 'worker.in-decision'), 30_000);
  // Stopped after the fence's share lock was granted: the transaction is open, and idle, until
  // the limit the worker set on its session ends it.
  await waitFor('Postgres to end its session idle in transaction', async () => (await sessionsEndedByPostgres()) > endedBefore, 30_000);

  // Another worker takes both shards once the stopped one's heartbeat has expired: the shard
  // whose record is share-locked only once Postgres has ended the session holding the lock.
  await pipeline.startWorker();
  expect(await idleInTransaction()).toBe(0);
  const taker = pipeline.workers[0]!;
  expect(taker.coordinator.owned().sort()).toEqual([0, 1]);
});

it('keeps a stricter idle limit that the database sets', async () => {
  vanished?.child.kill('SIGKILL');
  await vanished?.exited;
  for (const running of pipeline.workers.splice(0)) await running.stop();
  // Under the next worker's 300 s liveness, the killed one's member row would count as live
  // and be assigned half the shards: it is gone, as after a leave.
  await pipeline.db.sql`DELETE FROM worker_members WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!}`;
  // A limit far above the database's 3 s: only the database's can end the session in time.
  await pipeline.db.sql.unsafe(`ALTER DATABASE "${pipeline.db.name}" SET idle_in_transaction_session_timeout = '3s'`);
  vanished = await spawnWagate('worker', {
    ...pipeline.env,
    WORKER_HEARTBEAT_MS: '2000',
    WORKER_LIVENESS_TIMEOUT_MS: '300000',
    WAGATE_FAILPOINT: 'worker.in-decision',
    WAGATE_FAILPOINT_ACTION: 'pause',
  });
  const endedBefore = await sessionsEndedByPostgres();
  expect((await postMetaText(pipeline.ingest.baseUrl, { id: uniqueWamid(), from: '15550810002', text: 'cancel' })).status).toBe(200);
  await waitFor('the worker stopped inside the decision', () => vanished!.logs.some((entry) => entry.failpoint === 'worker.in-decision'), 30_000);
  // Its own limit would be 296 s; the database's 3 s ends the session long before.
  await waitFor('Postgres to end its session idle in transaction', async () => (await sessionsEndedByPostgres()) > endedBefore, 30_000);
  expect(await idleInTransaction()).toBe(0);
});
