import { DEFAULT_WORKER_MESSAGES_IN_HAND } from '../src/config';
import type { Sql } from '../src/db/client';
import { startFakeProvider, type FakeProvider } from '../src/dev/fake-provider';
import { importCatalog } from '../src/orders/catalog-import';
import { waitForOutboxDrain } from './checks';
import { countAtLeast, scrapeIngestMetrics, summarizeBetween } from './ingest-metrics';
import { countWorkMessages, createBenchEnvironment, type BenchEnvironment } from './environment';
import { postAll, runClosedLoop, runPaced, type LatencySummary, type LoadResult } from './load';
import { createMessageSource, type MessageSource } from './messages';
import { startIngestServer, startWorkerProcess, type ServerProcess, type WorkerProcess } from './servers';
import { ACCESS_TOKEN, CATALOG_CSV, WORKER_SENDERS, type Track } from './worker';

/** The system under test: ingest and worker processes around one database and queue prefix, replies to a fake Graph API. */
export interface System {
  env: BenchEnvironment;
  source: MessageSource;
  fake: FakeProvider;
  ingests: ServerProcess[];
  workers: WorkerProcess[];
  /** Every id an ingest acknowledged, for the check that each has its row. */
  ackedIds: string[];
  startIngest(): Promise<ServerProcess>;
  startWorker(): Promise<WorkerProcess>;
  release(): Promise<void>;
}

const PREFETCH = 32;
const FILL_CONNECTIONS = 64;
const DRAIN_POLL_MS = 200;

export async function createSystem(track: Track): Promise<System> {
  const env = await createBenchEnvironment();
  const releaseEnv = track(() => env.destroy());
  await importCatalog(env.sql, CATALOG_CSV);
  const fake = await startFakeProvider({ metaAccessToken: ACCESS_TOKEN });
  const releaseFake = track(() => fake.close());
  const releases: (() => Promise<void>)[] = [];
  const system: System = {
    env,
    source: createMessageSource(env.runId, env.appSecret, { senders: WORKER_SENDERS }),
    fake,
    ingests: [],
    workers: [],
    ackedIds: [],
    async startIngest() {
      const ingest = await startIngestServer({ ...env, memoryLimited: true });
      releases.push(track(() => ingest.stop()));
      system.ingests.push(ingest);
      return ingest;
    },
    async startWorker() {
      const worker = await startWorkerProcess({ ...env, graphApiUrl: fake.url, accessToken: ACCESS_TOKEN, prefetch: PREFETCH, messagesInHand: DEFAULT_WORKER_MESSAGES_IN_HAND, memoryLimited: true });
      releases.push(track(() => worker.stop()));
      await worker.started;
      system.workers.push(worker);
      return worker;
    },
    async release() {
      for (const release of releases.reverse()) await release();
      await releaseFake();
      await releaseEnv();
    },
  };
  return system;
}

function keep(system: System, result: { ackedIds: string[] }): void {
  for (const id of result.ackedIds) system.ackedIds.push(id);
}

/** Closed loop split over every ingest (64 connections in all), so the ingests share the load as behind a Service. */
export async function saturate(system: System, seconds: number, connections = 64): Promise<{ acksPerSecond: number; results: LoadResult[] }> {
  const share = Math.max(1, Math.floor(connections / system.ingests.length));
  const results = await Promise.all(system.ingests.map((ingest) => runClosedLoop(ingest.webhookUrl, system.source, share, seconds)));
  results.forEach((result) => keep(system, result));
  return { acksPerSecond: results.reduce((sum, result) => sum + result.requestsPerSecond, 0), results };
}

/** What a paced run measured: the client's latencies, and the ingest's own view of the same requests. */
export type PacedTail = LatencySummary & {
  ok: number;
  failed: number;
  failures: Record<string, number>;
  /** How late the generator sent requests (part of every latency). */
  sendLagMs: LatencySummary;
  /** The ingest's ack histogram over the run (from request arrival to response; p99 from its buckets). */
  serverAckMs: { mean: number; p99: number };
  /**
   * The ingest's group commits over the run. A stall of Postgres holds every commit in flight
   * at once while requests pile up behind them, so a few slow commits make many slow acks: the
   * per-commit p99 hides what the count of slow ones shows.
   */
  commitMs: { mean: number; p99: number; atLeast50Ms: number };
  /** The ingest's longest event-loop delay during the run, and its garbage collections (pauses ≥ 100 ms counted apart). */
  loopLagMaxMs: number;
  gc: { count: number; totalMs: number; atLeast100Ms: number };
};

/** 500 req/s (or rate) against the first ingest, latency from when each request was due. */
export async function paced(system: System, rate: number, seconds: number, ingest = system.ingests[0]!): Promise<PacedTail> {
  const before = ingest.metricsUrl ? await scrapeIngestMetrics(ingest.metricsUrl) : null;
  const result = await runPaced(ingest.webhookUrl, system.source, rate, seconds);
  const after = ingest.metricsUrl ? await scrapeIngestMetrics(ingest.metricsUrl) : null;
  const internals = before && after ? summarizeBetween(before, after) : null;
  keep(system, result);
  const inMs = (summary: { mean: number; p99: number } | undefined) => ({ mean: (summary?.mean ?? NaN) * 1000, p99: (summary?.p99 ?? NaN) * 1000 });
  return {
    ...result.latencyMs,
    ok: result.ok,
    failed: result.non2xx + result.errors,
    failures: result.failures ?? {},
    sendLagMs: result.sendLagMs!,
    serverAckMs: inMs(internals?.ackSeconds),
    commitMs: { ...inMs(internals?.ledgerCommitSeconds), atLeast50Ms: before && after ? countAtLeast(before.ledgerCommitSeconds, after.ledgerCommitSeconds, 0.05) : NaN },
    loopLagMaxMs: (after?.loopLagMaxSeconds ?? NaN) * 1000,
    gc: before && after
      ? { count: after.gcSeconds.count - before.gcSeconds.count, totalMs: (after.gcSeconds.sum - before.gcSeconds.sum) * 1000, atLeast100Ms: countAtLeast(before.gcSeconds, after.gcSeconds, 0.1) }
      : { count: NaN, totalMs: NaN, atLeast100Ms: NaN },
  };
}

/** Acks/s and orders/s of `processes` ingests and as many workers, at saturation. */
export async function measureThroughput(track: Track, processes: number, seconds: number) {
  const system = await createSystem(track);
  try {
    for (let i = 0; i < processes; i++) await system.startIngest();
    for (let i = 0; i < processes; i++) await system.startWorker();
    await saturate(system, 2); // warm-up: JIT, pools, Postgres's caches
    const [start] = await system.env.sql<{ at: Date }[]>`SELECT clock_timestamp() AS at`;
    const { acksPerSecond } = await saturate(system, seconds);
    const [end] = await system.env.sql<{ at: Date }[]>`SELECT clock_timestamp() AS at`;
    const [orders] = await system.env.sql<{ n: number }[]>`
      SELECT count(*)::integer AS n FROM orders WHERE created_at BETWEEN ${start!.at} AND ${end!.at}`;
    const missing = await missingRows(system.env.sql, system.ackedIds);
    return { acksPerSecond, ordersPerSecond: orders!.n / ((end!.at.getTime() - start!.at.getTime()) / 1000), missing };
  } finally {
    await system.release();
  }
}

/** Queues `messages` through one ingest with no worker running, then times `workers` workers until every message is finished. */
export async function measureDrain(track: Track, messages: number, workers: number) {
  const system = await createSystem(track);
  try {
    await system.startIngest();
    await fill(system, messages);
    const started = performance.now();
    await Promise.all(Array.from({ length: workers }, () => system.startWorker()));
    const drained = await waitUntilFinished(system.env.sql, 60_000 + messages * 20);
    const seconds = (performance.now() - started) / 1000;
    return { seconds: drained ? seconds : null, messagesPerSecond: drained ? messages / seconds : null, missing: await missingRows(system.env.sql, system.ackedIds) };
  } finally {
    await system.release();
  }
}

/** Posts messages until the work queues hold at least `depth`, and the outbox is empty. */
export async function fill(system: System, depth: number): Promise<number> {
  let onQueues = (await countWorkMessages(system.env.amqpUrl, system.env.topology)) ?? 0;
  while (onQueues < depth) {
    const batch = Array.from({ length: depth - onQueues }, () => system.source.next());
    keep(system, await postAll(system.ingests[0]!.webhookUrl, batch, FILL_CONNECTIONS));
    await waitForOutboxDrain(system.env.sql);
    onQueues = (await countWorkMessages(system.env.amqpUrl, system.env.topology)) ?? 0;
  }
  return onQueues;
}

async function waitUntilFinished(sql: Sql, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const [row] = await sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM webhook_messages WHERE status IN ('queued', 'processing')`;
    if (row!.n === 0) return true;
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
  return false;
}

/** Acknowledged ids without a row: must be 0 (no 200 without a durable record). */
export async function missingRows(sql: Sql, ids: string[]): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM unnest(${ids}::text[]) AS acked(id)
    WHERE NOT EXISTS (SELECT 1 FROM webhook_messages m WHERE m.webhook_source = 'whatsapp' AND m.message_id = acked.id)`;
  return row!.n;
}
