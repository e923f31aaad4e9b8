import { countBacklog } from '../../src/autoscaler/backlog';
import { createScalingLoop } from '../../src/autoscaler/scaling-loop';
import type { WorkerDeployment } from '../../src/autoscaler/worker-deployment';
import { closeDatabase, createDatabase } from '../../src/db/client';
import { storedShardCount } from '../../src/ledger/shard-count';
import { createAutoscalerMetrics } from '../../src/telemetry/autoscaler-metrics';
import { createLogger } from '../../src/telemetry/logger';
import { createTestDatabase, withPort, type TestDatabase } from '../support/database';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

/**
 * The autoscaler's tick reads the backlog and the shard count from Postgres. A connection that
 * the network stops answering (a failover to a new address, a dropped route) holds a query
 * until TCP gives up, minutes later, and the elector keeps renewing the Lease meanwhile, so no
 * standby could act. The tick's signal (its renew deadline, or the end of its leadership) now
 * ends the wait for those reads too, as it ends the Kubernetes calls.
 */
const ABORT_MS = 1_000;
/** The abort plus room for a busy machine; a hung read would wait for minutes. */
const BOUND_MS = ABORT_MS + 15_000;

let db: TestDatabase;
let proxy: TcpProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startTcpProxy(Number(new URL(db.url).port || 5432), new URL(db.url).hostname);
});

afterAll(async () => {
  await proxy.close();
  await db.drop();
});

/** Only reads reach the Deployment, and a tick whose reads fail must not get that far. */
const untouchableWorker = new Proxy({} as WorkerDeployment, {
  get: (_target, method) => () => Promise.reject(new Error(`the tick called worker.${String(method)} without a backlog`)),
});

async function timedTick(countBacklogFrom: () => Promise<number>, countShardsFrom: () => Promise<number | null>): Promise<{ reason: string; ms: number; errors: number }> {
  const metrics = createAutoscalerMetrics();
  const loop = createScalingLoop({
    countBacklog: countBacklogFrom,
    countShards: countShardsFrom,
    worker: untouchableWorker,
    policy: { targetPerReplica: 10, minReplicas: 1, maxReplicas: 8, shards: 8, scaleDownStabilizationMs: 0, tickGapMs: 20_000, tolerance: 0.1 },
    manualHoldMs: 60_000,
    metrics,
    log: createLogger('silent', 'test'),
  });
  const started = performance.now();
  const reason = await loop.tick(AbortSignal.timeout(ABORT_MS));
  const ms = performance.now() - started;
  const errors = (await metrics.decisions.get()).values.find((value) => value.labels.reason === 'error')?.value ?? 0;
  return { reason, ms, errors };
}

it.each([
  ['the backlog', 'backlog' as const],
  ['the stored shard count', 'shards' as const],
])('a tick whose read of %s goes unanswered ends at its signal, counted as an error', async (_name, silent) => {
  const sql = createDatabase({ url: withPort(db.url, proxy.port), maxConnections: 2, connectTimeoutSeconds: 3, statementTimeoutMs: 30_000, applicationName: 'wagate-autoscaler-test' });
  try {
    // Both connections open and answering first, so the silence falls on an established connection.
    await Promise.all([sql`SELECT pg_sleep(0.05)`, sql`SELECT pg_sleep(0.05)`]);
    // The network goes silent just before the read named.
    const silencedBefore = <T>(read: 'backlog' | 'shards', work: () => Promise<T>) => () => {
      if (read === silent) proxy.setMode('blackhole');
      return work();
    };
    const tick = await timedTick(silencedBefore('backlog', () => countBacklog(sql)), silencedBefore('shards', () => storedShardCount(sql, 'wagate')));
    expect(tick).toEqual({ reason: 'error', ms: expect.any(Number), errors: 1 });
    expect(tick.ms).toBeGreaterThanOrEqual(ABORT_MS - 50);
    expect(tick.ms).toBeLessThan(BOUND_MS);
  } finally {
    proxy.setMode('refuse');
    await closeDatabase(sql);
    proxy.setMode('forward');
  }
}, 60_000);
