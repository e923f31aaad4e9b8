import { startFakeProvider, type FakeProvider } from '../src/dev/fake-provider';
import { createCpuLimitedGroup, throttledShare, throttling, type CpuLimitedGroup } from './cgroup';
import type { Check } from './checks';
import { nextCountDelayMs } from './count-pace';
import { createBenchEnvironment, type BenchEnvironment } from './environment';
import { measureCpu, processCpuSeconds } from './probes';
import { startWorkerProcess, type WorkerProcess } from './servers';
import { ACCESS_TOKEN, ORDER_TEXT, prepareBacklog, verifyWorkerRun, type Track } from './worker';

export interface ScaleRunSpec {
  workers: number;
  messages: number;
  shards: number;
  /** CPU each worker process may use, in cores (a pod's CPU limit). */
  coresPerWorker: number;
  prefetch: number;
  messagesInHand: number;
  /**
   * Messages each worker processes, without its limit, before the measured drain: a pod that
   * has been running. 0 measures freshly started workers, whose code V8 has yet to compile.
   */
  warmUpPerWorker: number;
}

export interface ScaleRun extends ScaleRunSpec {
  /** From the moment the paused group was let go until the last message was processed. */
  seconds: number;
  messagesPerSecond: number;
  /** CPU time the workers used together over the drain, per message. */
  workerCpuMsPerMessage: number;
  /** Shards each worker held at the end (all should be within one of each other). */
  shardsPerWorker: number[];
  /** Share of each worker's CFS periods, from the let-go to the end, that its quota cut short: near 1 means it was CPU-bound. */
  throttledShares: number[];
  /** CPU time Postgres (every backend) used over the drain, per message. */
  postgresCpuMsPerMessage: number;
  /** Part of it: the backends serving the bench's database (the rest is Postgres's own background work). */
  postgresBackendsCpuMsPerMessage: number;
  /** Cores the whole machine was busy, on average, over the drain: near its core count means the machine, not the limits, was the limit. */
  machineBusyCores: number;
  /** Mean messages per shared statement over the drain, summed over the workers, by statement. */
  meanBatchItems: Record<string, number>;
  checks: Check[];
}

const POLL_MS = 50;
/** Short, so that the moment the group is let go is not blurred by a 2 s heartbeat. */
const BENCH_HEARTBEAT_MS = 250;
/** The inbound side of a drain, emptied after the warm-up so that the measured drain counts only its own messages. */
const INBOUND_TABLES = 'webhook_messages, message_statuses, outbox, webhook_rate_limits';
/** Every table a drain writes, analysed before the measured drain as autovacuum would have after the warm-up's burst. */
const DRAIN_TABLES = `${INBOUND_TABLES}, orders, order_items, outbound_messages, customer_languages`;

/**
 * N worker processes, each in its own CPU-limited cgroup, drain the same pre-loaded backlog.
 * The group is held paused (work_shard_settings.paused, as `wagate reshard` does) until all
 * N have joined, so that the clock starts with the shards spread and start-up under a
 * quarter core (several seconds of loading) is not counted; a scale-up that joins during a
 * backlog adds a hand-over of a second or so on top, which the tests cover. With a warm-up,
 * the group first drains a backlog of its own without limits and is paused again; the
 * inbound tables are emptied before the measured backlog is loaded.
 */
export async function runScaleScenario(spec: ScaleRunSpec, track: Track): Promise<ScaleRun> {
  const env = await createBenchEnvironment({ workShards: spec.shards });
  const releaseEnv = track(() => env.destroy());
  await setPaused(env, true, spec.shards);
  const fake = await startFakeProvider({ metaAccessToken: ACCESS_TOKEN });
  const releaseFake = track(() => fake.close());
  const started = await startLimitedWorkers(env, spec, fake.url, track);
  await waitForMembers(env, spec.workers);
  if (spec.warmUpPerWorker > 0) {
    for (const { group } of started) group.setCores(null);
    await warmUp(env, spec, fake, started.map((s) => s.worker), track);
    for (const { group } of started) group.setCores(spec.coresPerWorker);
  }
  const { messages, preloadCheck } = await prepareBacklog(env, spec.messages, track);
  // A replica that has been running meets the backlog with statistics of tables in use. Taken
  // any earlier (of the emptied inbound tables), they had the workers' prepared statements
  // settle on plans for empty tables, which read whole tables as the drain filled them.
  if (spec.warmUpPerWorker > 0) await env.sql.unsafe(`ANALYZE ${DRAIN_TABLES}`);

  const throttlingAtLetGo = started.map((s) => throttling(s.group));
  const cpuAtLetGo = workersCpuSeconds(started);
  const batchesAtLetGo = await batchTotals(started.map((s) => s.worker));
  const machine = measureCpu(started[0]!.worker.pid, env.databaseName);
  const measuredFrom = performance.now();
  const letGoMs = await setPaused(env, false, spec.shards);
  const complete = await waitUntilDone(env, spec.messages, started.map((s) => s.worker));
  const workerCpuSeconds = workersCpuSeconds(started) - cpuAtLetGo;
  const cpu = machine.stop();
  const measuredSeconds = (performance.now() - measuredFrom) / 1000;
  const batchesAtEnd = await batchTotals(started.map((s) => s.worker));
  const [row] = await env.sql<{ last: number | null }[]>`
    SELECT (extract(epoch FROM max(processed_at)) * 1000)::float8 AS last FROM webhook_messages`;
  const shardsPerWorker = await shardsHeld(env, spec.workers);
  const throttledShares = started.map((s, index) => throttledShare(throttlingAtLetGo[index]!, throttling(s.group)));
  for (const { release } of started) await release();

  const orderIds = messages.filter((message) => message.text === ORDER_TEXT).map((message) => message.id);
  const checks = [preloadCheck, ...(await verifyWorkerRun(env, fake, messages, orderIds, complete))];
  await releaseFake();
  await releaseEnv();
  const seconds = ((row!.last ?? NaN) - letGoMs) / 1000;
  const label = `${spec.workers} worker(s) at ${spec.coresPerWorker} core${spec.warmUpPerWorker > 0 ? ', warmed up' : ''}`;
  return {
    ...spec,
    seconds,
    messagesPerSecond: spec.messages / seconds,
    workerCpuMsPerMessage: (workerCpuSeconds * 1000) / spec.messages,
    shardsPerWorker,
    throttledShares,
    // Cores over the whole measured window (the count's pace adds up to a few hundred ms to it).
    postgresCpuMsPerMessage: (cpu.postgres * measuredSeconds * 1000) / spec.messages,
    postgresBackendsCpuMsPerMessage: ((cpu.postgresDatabase ?? NaN) * measuredSeconds * 1000) / spec.messages,
    machineBusyCores: cpu.machineCores,
    meanBatchItems: meanBatchItems(batchesAtLetGo, batchesAtEnd),
    checks: checks.map((check) => ({ ...check, name: `scale-out, ${label}: ${check.name}` })),
  };
}

/** Pauses or lets go the group; answers Postgres's clock at that moment, in epoch ms. */
async function setPaused(env: BenchEnvironment, paused: boolean, shards: number): Promise<number> {
  const [row] = await env.sql<{ at: number }[]>`
    INSERT INTO work_shard_settings (queue_prefix, shard_count, paused) VALUES (${env.queuePrefix}, ${shards}, ${paused})
    ON CONFLICT (queue_prefix) DO UPDATE SET paused = ${paused}
    RETURNING (extract(epoch FROM now()) * 1000)::float8 AS at`;
  return row!.at;
}

/**
 * The group drains warmUpPerWorker messages per worker, is paused, and once every shard is
 * released (each worker has finished what it held) the inbound tables and the fake's calls are cleared.
 */
async function warmUp(env: BenchEnvironment, spec: ScaleRunSpec, fake: FakeProvider, workers: WorkerProcess[], track: Track): Promise<void> {
  const total = spec.warmUpPerWorker * spec.workers;
  const { preloadCheck } = await prepareBacklog(env, total, track, `${env.runId}-warm-up`);
  if (!preloadCheck.ok) throw new Error(`scale-out warm-up: ${preloadCheck.detail}`);
  await setPaused(env, false, spec.shards);
  if (!(await waitUntilDone(env, total, workers))) throw new Error(`scale-out warm-up: the group did not process its ${total} messages`);
  await setPaused(env, true, spec.shards);
  await waitForReleasedShards(env);
  // The replies, orders and languages stay, as a running system's do; the checks count the run's own.
  await env.sql.unsafe(`TRUNCATE ${INBOUND_TABLES}`);
  fake.reset();
}

function waitForReleasedShards(env: BenchEnvironment): Promise<void> {
  return pollGroup('the paused group did not release its shards within 60 s', async () => {
    const [row] = await env.sql<{ n: number }[]>`
      SELECT count(*)::integer AS n FROM work_shard_owners WHERE queue_prefix = ${env.queuePrefix} AND owner IS NOT NULL`;
    return row!.n === 0;
  });
}

function workersCpuSeconds(started: { worker: WorkerProcess }[]): number {
  return started.reduce((sum, { worker }) => sum + (processCpuSeconds(worker.pid) ?? NaN), 0);
}

async function startLimitedWorkers(env: BenchEnvironment, spec: ScaleRunSpec, graphApiUrl: string, track: Track) {
  const started: { worker: WorkerProcess; group: CpuLimitedGroup; release: () => Promise<void> }[] = [];
  for (let index = 0; index < spec.workers; index += 1) {
    const group = createCpuLimitedGroup(`wagate-bench-${env.runId}-${index}`, spec.coresPerWorker);
    const releaseGroup = track(async () => group.remove());
    const worker = await startWorkerProcess({
      databaseUrl: env.databaseUrl,
      amqpUrl: env.amqpUrl,
      queuePrefix: env.queuePrefix,
      graphApiUrl,
      accessToken: ACCESS_TOKEN,
      prefetch: spec.prefetch,
      messagesInHand: spec.messagesInHand,
      workShards: spec.shards,
      env: { WORKER_HEARTBEAT_MS: String(BENCH_HEARTBEAT_MS) },
      // A pod's memory limit beside its CPU limit: the heap is sized as in the cluster.
      memoryLimited: true,
      // Joined before node starts: every thread it makes is in the group.
      cpuGroup: group,
    });
    const releaseWorker = track(() => worker.stop());
    started.push({ worker, group, release: async () => {
      await releaseWorker();
      await releaseGroup();
    } });
  }
  await Promise.all(started.map((s) => s.worker.started));
  return started;
}

function waitForMembers(env: BenchEnvironment, count: number): Promise<void> {
  return pollGroup(`only some of the ${count} workers joined the group within 60 s`, async () => {
    const [row] = await env.sql<{ n: number }[]>`
      SELECT count(*)::integer AS n FROM worker_members WHERE queue_prefix = ${env.queuePrefix} AND heartbeat_at > now() - interval '10 seconds'`;
    return row!.n >= count;
  });
}

/** Asks every POLL_MS until the group is as wanted; fails with `failure` after 60 s. */
async function pollGroup(failure: string, settled: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (await settled()) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(failure);
}

async function waitUntilDone(env: BenchEnvironment, total: number, workers: WorkerProcess[]): Promise<boolean> {
  // Generous, so that a stall shows as a failed check: 60 s plus 40 ms a message.
  const deadline = Date.now() + 60_000 + total * 40;
  const countingFrom = Date.now();
  while (Date.now() < deadline) {
    const [row] = await env.sql<{ done: number }[]>`
      SELECT count(*) FILTER (WHERE status IN ('processed', 'unmatched'))::integer AS done FROM webhook_messages`;
    if (row!.done >= total) return true;
    if (workers.some((worker) => worker.exited())) return false;
    // The drain's time comes from processed_at; the pace only keeps the count off Postgres.
    await new Promise((resolve) => setTimeout(resolve, nextCountDelayMs(row!.done, total, Date.now() - countingFrom)));
  }
  return false;
}

type BatchTotals = Map<string, { sum: number; count: number }>;

/** The workers' wagate_worker_batch_items sums and counts by statement, added up. */
async function batchTotals(workers: WorkerProcess[]): Promise<BatchTotals> {
  const totals: BatchTotals = new Map();
  for (const worker of workers) {
    const text = await (await fetch(worker.metricsUrl)).text();
    for (const match of text.matchAll(/^wagate_worker_batch_items_(sum|count)\{[^}]*statement="([a-z_]+)"[^}]*\} (\S+)$/gm)) {
      const entry = totals.get(match[2]!) ?? { sum: 0, count: 0 };
      entry[match[1] as 'sum' | 'count'] += Number(match[3]);
      totals.set(match[2]!, entry);
    }
  }
  return totals;
}

function meanBatchItems(before: BatchTotals, after: BatchTotals): Record<string, number> {
  const means: Record<string, number> = {};
  for (const [statement, end] of after) {
    const start = before.get(statement) ?? { sum: 0, count: 0 };
    const count = end.count - start.count;
    if (count > 0) means[statement] = (end.sum - start.sum) / count;
  }
  return means;
}

async function shardsHeld(env: BenchEnvironment, workers: number): Promise<number[]> {
  const rows = await env.sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM work_shard_owners WHERE queue_prefix = ${env.queuePrefix} AND owner IS NOT NULL
    GROUP BY owner ORDER BY n DESC`;
  const held = rows.map((row) => row.n);
  while (held.length < workers) held.push(0);
  return held;
}
