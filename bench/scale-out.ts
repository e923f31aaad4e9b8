import { startFakeProvider } from '../src/dev/fake-provider';
import { createCpuLimitedGroup, throttledShare, throttling, type CpuLimitedGroup } from './cgroup';
import type { Check } from './checks';
import { nextCountDelayMs } from './count-pace';
import { createBenchEnvironment, type BenchEnvironment } from './environment';
import { startWorkerProcess, type WorkerProcess } from './servers';
import { ACCESS_TOKEN, ORDER_TEXT, prepareBacklog, verifyWorkerRun, type Track } from './worker';

export interface ScaleRunSpec {
  workers: number;
  messages: number;
  shards: number;
  /** CPU each worker process may use, in cores (a pod's CPU limit). */
  coresPerWorker: number;
  prefetch: number;
}

export interface ScaleRun extends ScaleRunSpec {
  /** From the moment the paused group was let go until the last message was processed. */
  seconds: number;
  messagesPerSecond: number;
  /** Shards each worker held at the end (all should be within one of each other). */
  shardsPerWorker: number[];
  /** Share of each worker's CFS periods, from the let-go to the end, that its quota cut short: near 1 means it was CPU-bound. */
  throttledShares: number[];
  checks: Check[];
}

const POLL_MS = 50;
/** Short, so that the moment the group is let go is not blurred by a 2 s heartbeat. */
const BENCH_HEARTBEAT_MS = 250;

/**
 * N worker processes, each in its own CPU-limited cgroup, drain the same pre-loaded backlog.
 * The group is held paused (work_shard_settings.paused, as `wagate reshard` does) until all
 * N have joined, so that the clock starts with the shards spread and start-up under a
 * quarter core (several seconds of loading) is not counted; a scale-up that joins during a
 * backlog adds a hand-over of a second or so on top, which the tests cover.
 */
export async function runScaleScenario(spec: ScaleRunSpec, track: Track): Promise<ScaleRun> {
  const env = await createBenchEnvironment({ workShards: spec.shards });
  const releaseEnv = track(() => env.destroy());
  const { messages, preloadCheck } = await prepareBacklog(env, spec.messages, track);
  await env.sql`INSERT INTO work_shard_settings (queue_prefix, shard_count, paused) VALUES (${env.queuePrefix}, ${spec.shards}, true)
                ON CONFLICT (queue_prefix) DO UPDATE SET paused = true`;

  const fake = await startFakeProvider({ metaAccessToken: ACCESS_TOKEN });
  const releaseFake = track(() => fake.close());
  const started = await startLimitedWorkers(env, spec, fake.url, track);
  await waitForMembers(env, spec.workers);
  const throttlingAtLetGo = started.map((s) => throttling(s.group));
  const [letGo] = await env.sql<{ at: number }[]>`
    UPDATE work_shard_settings SET paused = false WHERE queue_prefix = ${env.queuePrefix}
    RETURNING (extract(epoch FROM now()) * 1000)::float8 AS at`;
  const letGoMs = letGo!.at;
  const complete = await waitUntilDone(env, spec.messages, started.map((s) => s.worker));
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
  const label = `${spec.workers} worker(s) at ${spec.coresPerWorker} core`;
  return {
    ...spec,
    seconds,
    messagesPerSecond: spec.messages / seconds,
    shardsPerWorker,
    throttledShares,
    checks: checks.map((check) => ({ ...check, name: `scale-out, ${label}: ${check.name}` })),
  };
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
      workShards: spec.shards,
      env: { WORKER_HEARTBEAT_MS: String(BENCH_HEARTBEAT_MS) },
    });
    // At once, before it has loaded anything: every thread it makes later is in the group too.
    group.add(worker.pid);
    const releaseWorker = track(() => worker.stop());
    started.push({ worker, group, release: async () => {
      await releaseWorker();
      await releaseGroup();
    } });
  }
  await Promise.all(started.map((s) => s.worker.started));
  return started;
}

async function waitForMembers(env: BenchEnvironment, count: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const [row] = await env.sql<{ n: number }[]>`
      SELECT count(*)::integer AS n FROM worker_members WHERE queue_prefix = ${env.queuePrefix} AND heartbeat_at > now() - interval '10 seconds'`;
    if (row!.n >= count) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`only some of the ${count} workers joined the group within 60 s`);
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

async function shardsHeld(env: BenchEnvironment, workers: number): Promise<number[]> {
  const rows = await env.sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM work_shard_owners WHERE queue_prefix = ${env.queuePrefix} AND owner IS NOT NULL
    GROUP BY owner ORDER BY n DESC`;
  const held = rows.map((row) => row.n);
  while (held.length < workers) held.push(0);
  return held;
}
