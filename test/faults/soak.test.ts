import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { TEST_DB_POOL_MAX } from '../support/ingest';
import { startFaultRig, type FaultRig } from '../support/fault-run';
import { seriesValue } from '../support/metrics';
import { acceptedConnections, flatness, type SoakSample } from '../support/soak';

/**
 * A steady load for SOAK_MINUTES (2 in the test command; scripts/soak.sh runs 30 and plots
 * it into docs/), sampling the gateway and the worker every 10 s. After the warm-up, handles
 * must not grow and every request is taken; in runs with at least
 * 5 measured minutes, heap and RSS must also grow less than 5 MiB per 10 minutes by a
 * least-squares slope. Postgres connections must stay within the gateway's pool bound, and
 * the handles judged are those besides them. SOAK_OUTPUT names a JSON file for the samples.
 */
const SOAK_MINUTES = Number(process.env.SOAK_MINUTES ?? '2');
const SAMPLE_EVERY_MS = 10_000;
const PER_SECOND = Number(process.env.SOAK_RATE ?? '10');
/**
 * The first samples are left out: pools fill, code is compiled, caches warm up, and V8 grows
 * each heap to the size its collections settle at. At 10 messages/s the worker's took about
 * 12 minutes to get there (RSS from 113 to 220 MiB, flat from then on), so a 5-minute warm-up
 * judged that growth as a leak.
 */
const WARM_UP_MS = Math.min(12 * 60_000, SOAK_MINUTES * 60_000 * 0.4);
/**
 * Below this much measured time the heap's garbage-collection sawtooth (tens of MiB in a young
 * process) swamps a 5 MiB per 10 minutes slope, so the slopes are recorded but not judged.
 */
const MIN_MEASURED_FOR_SLOPES_MS = 5 * 60_000;
/**
 * Handles and connections may differ by one between the halves without growing: a request in
 * flight at the sample, or a pool connection replaced (idle or lifetime limit), adds one.
 * A leak at 10 messages/s adds hundreds.
 */
const COUNT_NOISE = 1;
/** The ingest and the worker, each with one pool of DB_POOL_MAX connections. */
const GATEWAY_POOLS = 2;
const POOL_MAX_CONNECTIONS = TEST_DB_POOL_MAX;
/** A loop that stalls this long under a steady 10/s is a bug, not noise. */
const MAX_EVENT_LOOP_P99_SECONDS = 1;
const MIB = 1024 * 1024;
const MAX_GROWTH_BYTES_PER_10_MIN = 5 * MIB;

let rig: FaultRig;

beforeAll(async () => {
  rig = await startFaultRig();
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

async function sample(startedAt: number): Promise<SoakSample> {
  const [ingest, worker] = await Promise.all([rig.ingest.metricsUrl, rig.worker.metricsUrl].map(async (url) => (await fetch(url)).text()));
  // Only the gateway's own pools: the test's pool opens and closes connections as it needs.
  const pools = await rig.db.sql<{ role: string; n: number }[]>`
    SELECT application_name AS role, count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND application_name IN ('wagate-ingest', 'wagate-worker')
    GROUP BY application_name`;
  const connectionsOf = (role: string) => pools.find((pool) => pool.role === role)?.n ?? 0;
  // A pool's sockets are handles too, and the pool opens them as load needs them (judged
  // against its bound below), so the handle count judged for leaks leaves them out; so are
  // the connections the process accepted, which the clients keep open while idle.
  const read = (exposition: string, role: string, urls: string[]) => ({
    rssBytes: seriesValue(exposition, 'wagate_process_resident_memory_bytes'),
    heapBytes: seriesValue(exposition, 'wagate_nodejs_heap_size_used_bytes'),
    eventLoopP99Seconds: seriesValue(exposition, 'wagate_nodejs_eventloop_lag_p99_seconds'),
    handles: seriesValue(exposition, 'wagate_nodejs_active_handles_total') - connectionsOf(role) -
      acceptedConnections(urls.map((url) => Number(new URL(url).port))),
  });
  return {
    atSeconds: (Date.now() - startedAt) / 1000,
    ingest: read(ingest!, 'wagate-ingest', [rig.ingest.baseUrl, rig.ingest.metricsUrl]),
    worker: read(worker!, 'wagate-worker', [rig.worker.metricsUrl]),
    postgresConnections: connectionsOf('wagate-ingest') + connectionsOf('wagate-worker'),
  };
}

it(`stays flat under a steady load for ${SOAK_MINUTES} minute(s)`, async () => {
  const samples: SoakSample[] = [];
  const startedAt = Date.now();
  const durationMs = SOAK_MINUTES * 60_000;
  const sampler = setInterval(() => void sample(startedAt).then((s) => samples.push(s)), SAMPLE_EVERY_MS);
  try {
    await rig.sendLoad(Math.round((durationMs / 1000) * PER_SECOND), PER_SECOND);
  } finally {
    clearInterval(sampler);
  }
  samples.push(await sample(startedAt));
  await rig.settle();
  expect(rig.sent.every((s) => s.status === 200)).toBe(true);

  const report = flatness(samples, WARM_UP_MS / 1000);
  if (process.env.SOAK_OUTPUT) {
    mkdirSync(path.dirname(process.env.SOAK_OUTPUT), { recursive: true });
    writeFileSync(process.env.SOAK_OUTPUT, `${JSON.stringify({ minutes: SOAK_MINUTES, perSecond: PER_SECOND, warmUpSeconds: WARM_UP_MS / 1000, report, samples }, null, 2)}\n`);
  }
  process.stdout.write(`\nsoak ${SOAK_MINUTES} min at ${PER_SECOND}/s, ${samples.length} samples\n${JSON.stringify(report, null, 2)}\n`);
  expect(report.measured).toBeGreaterThanOrEqual(3);
  const judgeSlopes = durationMs - WARM_UP_MS >= MIN_MEASURED_FOR_SLOPES_MS;
  for (const role of ['ingest', 'worker'] as const) {
    if (judgeSlopes) {
      expect(report[role].heapBytesPer10Min).toBeLessThan(MAX_GROWTH_BYTES_PER_10_MIN);
      expect(report[role].rssBytesPer10Min).toBeLessThan(MAX_GROWTH_BYTES_PER_10_MIN);
    }
    expect(report[role].handlesLate).toBeLessThanOrEqual(report[role].handlesEarly + COUNT_NOISE);
    expect(report[role].eventLoopP99MaxSeconds).toBeLessThan(MAX_EVENT_LOOP_P99_SECONDS);
  }
  // Each process has one pool of at most DB_POOL_MAX connections, opened as load needs them, so
  // a slow moment late in the run may legitimately add a few; a leak would pass the bound.
  expect(report.postgresConnectionsMax).toBeGreaterThan(0); // the count sees the gateway at all
  expect(report.postgresConnectionsMax).toBeLessThanOrEqual(GATEWAY_POOLS * POOL_MAX_CONNECTIONS);
}, SOAK_MINUTES * 60_000 + 180_000);
