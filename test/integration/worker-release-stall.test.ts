import { startWorker, type RunningWorker } from '../../src/commands/worker';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/telemetry/logger';
import { shardOf } from '../../src/queue/topology';
import { callsTo, startPipeline, type Pipeline } from '../support/pipeline';
import { orderAndCallsPerSender, overlapping, sendRounds } from '../support/scale-out';
import { waitFor } from '../support/wait';
import { holdQueuedMessages, stallHeartbeats } from '../support/database';

/**
 * A worker cut off from Postgres in the middle of a plain release: it has cancelled the shard's
 * consumer and finishes the messages in hand, but those wait on Postgres, and so do its
 * heartbeats. Once its heartbeat expires, the worker that takes the shard subscribes to a queue
 * with no consumer and gets the sender's next messages at once. The releasing worker must have
 * given back the ones it had not finished by then, in order, or they come after.
 *
 * Here the messages in hand wait on their rows, which the test keeps locked, and the heartbeats
 * on the worker's member row: nothing anyone does with the sender can go on until both are let
 * go, so the order in which the messages come to the taker decides the result.
 */
const SHARDS = 2;
const MESSAGES = 24;
const TAKER_APPLICATION = 'wagate-release-stall-taker';
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({
    WORK_SHARDS: String(SHARDS),
    WORKER_HEARTBEAT_MS: '100',
    WORKER_LIVENESS_TIMEOUT_MS: '600',
    // Four messages in hand per shard, and most of the sender's still queued when the shard moves.
    WORKER_PREFETCH: '4',
    WORKER_MESSAGES_IN_HAND: '0',
    // The statements that wait on the locked rows must outlast the test's hold, not fail into the retry tiers.
    DB_STATEMENT_TIMEOUT_MS: '60000',
  });
}, 120_000);

afterAll(async () => {
  await pipeline.stop();
});

/** Statements of the taker's connections waiting on a lock: its claim of a message it was given. */
async function takerWaitingOnLocks(): Promise<number> {
  const [row] = await pipeline.db.sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = ${TAKER_APPLICATION} AND wait_event_type = 'Lock'`;
  return row!.n;
}

/**
 * What holds a take up, said when the wait for one times out: every statement of the database
 * with what blocks it, and the group's records as Postgres sees them.
 */
async function groupState() {
  const statements = await pipeline.db.sql`
    SELECT pid, application_name, state, wait_event_type, wait_event, pg_blocking_pids(pid) AS blocked_by,
           round(extract(epoch FROM now() - query_start)::numeric, 1) AS seconds, left(query, 160) AS query
    FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`;
  const owners = await pipeline.db.sql`SELECT shard, owner, round(extract(epoch FROM now() - changed_at)::numeric, 1) AS changed_ago FROM work_shard_owners`;
  const members = await pipeline.db.sql`SELECT member_id, leaving, round(extract(epoch FROM now() - heartbeat_at)::numeric, 1) AS heartbeat_ago FROM worker_members`;
  // The rows the waiting statements wait on: a waiter holds the tuple's lock while it waits for its locker.
  const tuples = await pipeline.db.sql`
    SELECT l.pid, l.granted, m.message_id, m.status, m.attempts, round(extract(epoch FROM now() - m.updated_at)::numeric, 1) AS updated_ago
    FROM pg_locks l JOIN webhook_messages m ON m.ctid = ('(' || l.page || ',' || l.tuple || ')')::tid
    WHERE l.locktype = 'tuple' AND l.relation = 'webhook_messages'::regclass`;
  const messages = await pipeline.db.sql`
    SELECT message_id, status, attempts, round(extract(epoch FROM now() - updated_at)::numeric, 1) AS updated_ago
    FROM webhook_messages WHERE status <> 'queued' ORDER BY id`;
  return { statements, owners, members, tuples, messages };
}

/**
 * A worker as `wagate worker` runs it, with its log lines kept. The taker's connections to
 * Postgres are named, so that the test can tell its statements from the first one's. Not
 * through pipeline.startWorker, which waits for the group to settle: here it cannot, until the
 * first worker's heartbeat has expired.
 */
async function startLoggedWorker(lines: { msg: string; shard?: number }[], applicationName?: string): Promise<RunningWorker> {
  const url = new URL(pipeline.env.DATABASE_URL!);
  if (applicationName) url.searchParams.set('application_name', applicationName);
  const config = loadConfig({ ...pipeline.env, DATABASE_URL: url.toString() });
  const log = createLogger('info', 'wagate-test-worker', { write: (line: string) => void lines.push(JSON.parse(line)) });
  const worker = await startWorker(config, log);
  pipeline.workers.push(worker);
  await worker.broker.waitUntilConnected(10000);
  return worker;
}

it('gives the messages it had not finished back in order when its heartbeats stall during a release', async () => {
  const lines: { msg: string; shard?: number }[] = [];
  const releasing = await startLoggedWorker(lines);
  await waitFor('the first worker to hold every shard', () => releasing.coordinator.owned().length === SHARDS);
  // One sender on each shard: which of them moves to the second worker is the assignment's choice.
  const senders = Array.from({ length: SHARDS }, (_, shard) =>
    Array.from({ length: 100 }, (_, n) => `1555071${String(n).padStart(4, '0')}`).find((from) => shardOf(from, SHARDS) === shard)!);
  pipeline.fake.behave({ kind: 'delay', ms: 100 });
  const sent = await sendRounds(pipeline.ingest.baseUrl, senders, Array.from({ length: MESSAGES }, (_, n) => `${n + 1} coke`));
  await waitFor('the first worker at work on both senders', () => senders.every((from) => callsTo(pipeline, from).length > 0));

  // Nothing more of either sender can start from here on, so the first worker's messages in
  // hand stay in hand: each waits at its claim. Only the queued rows: a decision under way holds
  // a share lock on its shard's record, and one that met a locked row of its own message would
  // keep it until the end of the test, the taker unable to take the shard.
  const ids = [...sent.values()].flat();
  const rows = await holdQueuedMessages(pipeline.db.sql, ids);
  let heartbeats: { release(): Promise<void> } | null = null;
  try {
    const takerLines: { msg: string; shard?: number }[] = [];
    const taker = await startLoggedWorker(takerLines, TAKER_APPLICATION);
    const { shard } = await waitFor('the first worker to release a shard', () => lines.find((line) => line.msg.startsWith('releasing a shard')));
    expect(shard).toBeDefined();
    expect(callsTo(pipeline, senders[shard!]!).length).toBeLessThan(MESSAGES - 8);

    // Cut off from Postgres in the middle of the release: its heartbeats wait from here on.
    const stall = stallHeartbeats(pipeline.db.sql, pipeline.env.QUEUE_PREFIX!, releasing.memberId);
    heartbeats = stall;
    await stall.held;
    await waitFor('the second worker to take the shard once the first one\'s heartbeat expired', () => taker.coordinator.owned().includes(shard!), 30_000)
      .catch(async (error: Error) => {
        throw new Error(`${error.message}; ${JSON.stringify(await groupState())}; the taker logged: ${JSON.stringify(takerLines.slice(-20))}; the first worker logged: ${JSON.stringify(lines.slice(-30))}`);
      });
    // The taker was given messages of the sender, and waits on the first one's row.
    await waitFor('the second worker to claim a message of the shard', async () => (await takerWaitingOnLocks()) > 0, 30_000);

    await stall.release();
    await rows.release();
    await waitFor('every message processed', async () => {
      const [row] = await pipeline.db.sql<{ n: number }[]>`
        SELECT count(*)::integer AS n FROM webhook_messages WHERE message_id = ANY(${ids}) AND status = 'processed'`;
      return row!.n === ids.length;
    }, 60_000);
    for (const from of senders) expect(overlapping(callsTo(pipeline, from))).toEqual([]);
    expect(await orderAndCallsPerSender(pipeline.db.sql, pipeline.fake, sent)).toEqual([]);
  } finally {
    await heartbeats?.release().catch(() => undefined);
    await rows.release().catch(() => undefined);
  }
}, 180_000);
