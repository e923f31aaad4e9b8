import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_WORKER_MESSAGES_IN_HAND } from '../src/config';
import { everyRequestAcknowledged, verifyDurability, type Check } from './checks';
import { createBenchEnvironment } from './environment';
import { formatHostileReport } from './hostile-report';
import { hostileSettings, runHostileBench } from './hostile';
import { createMessageSource } from './messages';
import { lifetimePeakRssMib } from './probes';
import {
  backendCoresPerThousand,
  formatChecks,
  formatReport,
  formatWorkerReport,
  medianNetBackendCostRatio,
  medianOfRoundRatios,
  roundCeilings,
  medianPhase,
  medianWorkerRun,
  mergeChecks,
  type Summary,
  type WorkerSummary,
} from './report';
import { runScenarioA, runScenarioB, scenarioSettings, type PhaseContext, type PhaseResult } from './scenarios';
import { startOtlpSinkIfAsked } from './otlp-sink';
import { formatAckAfterReport, runAckAfterBench } from './ack-after';
import { formatOrdersReport, runOrdersBench } from './orders';
import { SERVER_MEMORY_MIB, startBareServer, startIngestServer, type ServerProcess } from './servers';
import { runSystemBench, systemSettings } from './system';
import { formatSystemReport } from './system-report';
import { runWorkerScenario, type Track, type WorkerRun, type WorkerRunSpec } from './worker';
import { runScaleScenario, type ScaleRun, type ScaleRunSpec } from './scale-out';
import { formatScaleReport, summarizeScale } from './scale-report';
import { effectiveCores } from './cores';

/**
 * `npm run bench`: its parts, each selectable with BENCH_ONLY (one, a comma-separated list, or all).
 *
 * ingest: a bare express endpoint and wagate's durable ingest, each in its own process,
 * loaded from this one. Every round runs both scenarios against both servers, in turn, and
 * the report gives the median of each figure over the rounds: on a shared 2-core machine one
 * noisy 10 s window would otherwise decide the result. The defaults (3 rounds of 5 s, each
 * after a 2 s warm-up) take about 90 s.
 *
 * ack: ACK_AFTER=commit against ACK_AFTER=publish, two ingest processes loaded in turn with
 * the ingest part's scenarios (BENCH_ROUNDS, BENCH_SECONDS). About 60 s.
 *
 * worker: one worker process drains queues filled beforehand through the ingest, against the
 * fake Graph API answering at once, then after 100 ms (prefetch 32, then 128). About 40 s.
 *
 * scale: 1, 2 and 3 worker processes, each limited to a quarter core, drain the same backlog,
 * after a warm-up drain of their own (BENCH_SCALE_WARM_UP). About 10 minutes.
 *
 * hostile: genuine requests at a steady rate while each slow or abusive client of
 * test/hostile/slow-clients.test.ts attacks one ingest, and with no attack for reference:
 * their p50 and p99 (bench/hostile.ts). About 2 minutes.
 *
 * orders: the labelled order corpus through the parser and the pg_trgm matcher: exact carts,
 * wrong orders and missed orders per language. A few seconds.
 *
 * system: ingests and workers together: throughput, backlog drain and the ack tails
 * (bench/system.ts). The longest part by far.
 */
type Part = 'ingest' | 'ack' | 'worker' | 'scale' | 'hostile' | 'orders' | 'system';
const PARTS: Part[] = ['ingest', 'ack', 'worker', 'scale', 'hostile', 'orders', 'system'];
const ONLY = parts(process.env.BENCH_ONLY);
const ROUNDS = positiveInteger('BENCH_ROUNDS', 3);
const MEASURED_SECONDS = positiveInteger('BENCH_SECONDS', 5);
const WORKER_ROUNDS = positiveInteger('BENCH_WORKER_ROUNDS', 1);
const WORKER_MESSAGES = positiveInteger('BENCH_WORKER_MESSAGES', 3000);
/** The runs with provider latency are sized from the 0 ms rate to last about this long. */
const WORKER_LATENCY_SECONDS = positiveInteger('BENCH_WORKER_SECONDS', 10);
const PROVIDER_LATENCY_MS = 100;
const DEFAULT_PREFETCH = 32;
const HIGH_PREFETCH = 128;
const MESSAGES_IN_HAND = DEFAULT_WORKER_MESSAGES_IN_HAND;
const MIN_LATENCY_RUN_MESSAGES = 1000;
const MAX_LATENCY_RUN_MESSAGES = 20_000;
const OUTPUT_FILE = path.join(__dirname, '..', '.bench', 'last.json');
/** Scale-out: 1, 2 and 3 worker processes, each limited to a quarter core, over the same backlog. */
const SCALE_ROUNDS = positiveInteger('BENCH_SCALE_ROUNDS', 3);
const SCALE_MESSAGES = positiveInteger('BENCH_SCALE_MESSAGES', 8000);
/** 12 splits evenly over 1, 2 and 3 workers, so the figures show scaling rather than rounding. */
const SCALE_SHARDS = positiveInteger('BENCH_SCALE_SHARDS', 12);
const SCALE_MAX_WORKERS = positiveInteger('BENCH_SCALE_WORKERS', 3);
const SCALE_CORES_PER_WORKER = Number(process.env.BENCH_SCALE_CORES ?? 0.25);
/**
 * Messages each worker drains unlimited before the measured drain, as a pod that has been
 * running has: a fresh Node process spends its first few thousand messages compiling its hot
 * path, over a second of CPU, which at a quarter core is most of an 8,000-message drain. 0
 * measures fresh workers.
 */
const SCALE_WARM_UP_PER_WORKER = nonNegativeInteger('BENCH_SCALE_WARM_UP', 6000);

type Phases = Record<'aBare' | 'aDurable' | 'bBare' | 'bDurable', PhaseResult[]>;

/** Released in reverse on the way out, including Ctrl-C, so no database, queue or child is left behind. */
const cleanups = new Set<() => Promise<void>>();
const track: Track = (release) => {
  let released = false;
  const once = async () => {
    if (released) return;
    released = true;
    cleanups.delete(once);
    await release();
  };
  cleanups.add(once);
  return once;
};

async function main(): Promise<number> {
  const startedAt = new Date();
  const output: Record<string, unknown> = {};
  const reports: string[] = [];
  const checks: Check[] = [];
  if (ONLY.has('ingest')) {
    const { summary, phases } = await runIngestBench();
    reports.push(formatReport(summary));
    checks.push(...summary.checks);
    Object.assign(output, summary, { perRound: phases });
  }
  if (ONLY.has('ack')) {
    const summary = await runAckAfterBench(ROUNDS, MEASURED_SECONDS, track, log);
    reports.push(formatAckAfterReport(summary));
    checks.push(...summary.checks);
    output.ackAfter = summary;
  }
  if (ONLY.has('worker')) {
    const { summary, perRound } = await runWorkerBench();
    reports.push(formatWorkerReport(summary));
    checks.push(...summary.checks);
    output.worker = { ...summary, perRound };
  }
  if (ONLY.has('scale')) {
    const { report, summary, perRound } = await runScaleBench();
    reports.push(report);
    checks.push(...perRound.flat().flatMap((run) => run.checks));
    output.scaleOut = { ...summary, perRound };
  }
  if (ONLY.has('hostile')) {
    const hostile = await runHostileBench(hostileSettings(positiveInteger), track, log);
    reports.push(formatHostileReport(hostile.summary));
    checks.push(...hostile.checks);
    output.hostile = { ...hostile.summary, perRound: hostile.perRound };
  }
  if (ONLY.has('orders')) {
    log('order corpus: parsing and matching every message');
    const summary = await runOrdersBench(track);
    reports.push(formatOrdersReport(summary));
    checks.push(...summary.checks);
    output.orders = summary;
  }
  if (ONLY.has('system')) {
    const system = await runSystemBench(systemSettings(positiveInteger), track, log);
    reports.push(formatSystemReport(system.summary));
    checks.push(...system.checks);
    output.system = system;
  }
  reports.push(formatChecks(checks));
  process.stdout.write(`\n${reports.join('\n\n')}\n`);
  writeJson({
    startedAt: startedAt.toISOString(),
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    machine: { cpus: os.cpus().length, effectiveCores: effectiveCores(), node: process.version, loadAverage: os.loadavg() },
    parts: [...ONLY],
    ...output,
    checks,
  });
  return checks.every((check) => check.ok) ? 0 : 1;
}

async function runIngestBench(): Promise<{ summary: Summary; phases: Phases }> {
  const env = await createBenchEnvironment();
  const releaseEnv = track(() => env.destroy());
  const stopSink = await startOtlpSinkIfAsked();
  const releaseSink = stopSink ? track(stopSink) : async () => undefined;
  const bare = await startBareServer({ memoryLimited: true });
  const releaseBare = track(() => bare.stop());
  const durable = await startIngestServer({ ...env, memoryLimited: true });
  const releaseDurable = track(() => durable.stop());
  log(`ingest run ${env.runId}: bare pid ${bare.pid}, ingest pid ${durable.pid}, ${ROUNDS} round(s) of ${MEASURED_SECONDS} s per phase`);

  const settings = scenarioSettings(MEASURED_SECONDS);
  const context: PhaseContext = { settings, source: createMessageSource(env.runId, env.appSecret), sql: env.sql, ackedIds: [] };
  const phases = await runRounds(bare, durable, context);
  log(`checking ${context.ackedIds.length} acknowledged messages`);
  const checks = [...(await verifyDurability(env, context.ackedIds)), everyRequestAcknowledged('ingest', [...phases.aDurable, ...phases.bDurable]),
    // The reference too: a bare server that dropped requests (resets, its memory limit) would be
    // timed on fewer answers, and the durable ingest's ratio to it look better than it is.
    everyRequestAcknowledged('bare', [...phases.aBare, ...phases.bBare])];

  const aBare = medianPhase(phases.aBare);
  const aDurable = medianPhase(phases.aDurable);
  const summary: Summary = {
    rounds: ROUNDS,
    settings,
    scenarioA: {
      bare: aBare,
      durable: aDurable,
      throughputRatio: medianOfRoundRatios(phases.aDurable, phases.aBare, (p) => p.requestsPerSecond),
      ceiling: roundCeilings(phases.aBare, phases.aDurable, effectiveCores()),
    },
    scenarioB: {
      bare: medianPhase(phases.bBare),
      durable: medianPhase(phases.bDurable),
      backendCostRatio: medianOfRoundRatios(phases.bDurable, phases.aDurable, backendCoresPerThousand),
      backendCostRatioNetOfIdle: medianNetBackendCostRatio(phases),
    },
    lifetimePeakRssMib: { bare: lifetimePeakRssMib(bare.pid), durable: lifetimePeakRssMib(durable.pid) },
    serverMemoryLimitMib: SERVER_MEMORY_MIB,
    machineCores: effectiveCores(),
    checks,
  };
  await releaseDurable();
  await releaseSink();
  await releaseBare();
  await releaseEnv();
  return { summary, phases };
}

async function runRounds(bare: ServerProcess, durable: ServerProcess, context: PhaseContext): Promise<Phases> {
  const phases: Phases = { aBare: [], aDurable: [], bBare: [], bDurable: [] };
  for (let round = 1; round <= ROUNDS; round += 1) {
    const step = (name: string) => log(`round ${round}/${ROUNDS}: ${name}`);
    step(`scenario A, ${bare.name}`);
    phases.aBare.push(await runScenarioA(bare, context));
    step(`scenario A, ${durable.name}`);
    phases.aDurable.push(await runScenarioA(durable, context));
    step(`scenario B, ${bare.name}`);
    phases.bBare.push(await runScenarioB(bare, context));
    step(`scenario B, ${durable.name}`);
    phases.bDurable.push(await runScenarioB(durable, context));
  }
  return phases;
}

/**
 * Each run gets a fresh database and queue prefix. The runs with provider latency are sized
 * from the round's 0 ms rate, which bounds theirs, so that they last about
 * WORKER_LATENCY_SECONDS; both use the same count so that prefetch is the only difference.
 */
async function runWorkerBench(): Promise<{ summary: WorkerSummary; perRound: WorkerRun[][] }> {
  const perRound: WorkerRun[][] = [];
  for (let round = 1; round <= WORKER_ROUNDS; round += 1) {
    const runs: WorkerRun[] = [];
    const run = async (spec: WorkerRunSpec) => {
      log(`worker round ${round}/${WORKER_ROUNDS}: ${spec.label}, ${spec.messages} messages`);
      const result = await runWorkerScenario(spec, track);
      log(`  ${result.ordersPerSecond.toFixed(0)} orders/s, ${result.messagesPerSecond.toFixed(0)} messages/s over ${result.seconds.toFixed(2)} s`);
      runs.push(result);
      return result;
    };
    const zero = await run({ label: '0 ms', providerLatencyMs: 0, prefetch: DEFAULT_PREFETCH, messagesInHand: MESSAGES_IN_HAND, messages: WORKER_MESSAGES });
    const sized = Number.isFinite(zero.messagesPerSecond) ? Math.round(zero.messagesPerSecond * WORKER_LATENCY_SECONDS) : WORKER_MESSAGES;
    const messages = Math.min(MAX_LATENCY_RUN_MESSAGES, Math.max(MIN_LATENCY_RUN_MESSAGES, sized));
    await run({ label: `${PROVIDER_LATENCY_MS} ms`, providerLatencyMs: PROVIDER_LATENCY_MS, prefetch: DEFAULT_PREFETCH, messagesInHand: MESSAGES_IN_HAND, messages });
    await run({ label: `${PROVIDER_LATENCY_MS} ms, prefetch ${HIGH_PREFETCH}`, providerLatencyMs: PROVIDER_LATENCY_MS, prefetch: HIGH_PREFETCH, messagesInHand: MESSAGES_IN_HAND, messages });
    perRound.push(runs);
  }
  const runs = perRound[0]!.map((_, index) => medianWorkerRun(perRound.map((round) => round[index]!)));
  const checks = mergeChecks(perRound.map((round) => round.flatMap((run) => run.checks)));
  const notes = perRound.flatMap((round, index) =>
    round
      .filter((run) => run.retried > 0 || run.extraClaims > 0)
      .map((run) => `round ${index + 1}, ${run.label}: ${run.retried} retried, ${run.extraClaims} extra claims; the worker's warnings above say why`),
  );
  return { summary: { rounds: WORKER_ROUNDS, runs, checks, notes, serverMemoryLimitMib: SERVER_MEMORY_MIB }, perRound };
}

/**
 * Rounds of 1, 2, ... SCALE_MAX_WORKERS workers in turn, so that a neighbour's burst on this
 * shared machine hits every worker count alike rather than one of them; medians per count.
 */
async function runScaleBench() {
  const perRound: ScaleRun[][] = [];
  const spec = {
    messages: SCALE_MESSAGES,
    shards: SCALE_SHARDS,
    coresPerWorker: SCALE_CORES_PER_WORKER,
    prefetch: DEFAULT_PREFETCH,
    messagesInHand: MESSAGES_IN_HAND,
    warmUpPerWorker: SCALE_WARM_UP_PER_WORKER,
    serverMemoryLimitMib: SERVER_MEMORY_MIB,
  };
  for (let round = 1; round <= SCALE_ROUNDS; round += 1) {
    const runs: ScaleRun[] = [];
    for (let workers = 1; workers <= SCALE_MAX_WORKERS; workers += 1) {
      const runSpec: ScaleRunSpec = { ...spec, workers };
      log(`scale-out round ${round}/${SCALE_ROUNDS}: ${workers} worker(s) at ${SCALE_CORES_PER_WORKER} core each, ${SCALE_MESSAGES} messages`);
      const result = await runScaleScenario(runSpec, track);
      log(`  ${result.messagesPerSecond.toFixed(0)} messages/s over ${result.seconds.toFixed(2)} s, shards ${result.shardsPerWorker.join('/')}, ` +
        `${result.workerCpuMsPerMessage.toFixed(2)} ms of worker CPU a message`);
      runs.push(result);
    }
    perRound.push(runs);
  }
  const summary = summarizeScale(perRound, os.loadavg());
  return { report: formatScaleReport(summary, spec), summary, perRound };
}

function writeJson(value: unknown): void {
  mkdirSync(path.dirname(OUTPUT_FILE), { recursive: true });
  writeFileSync(OUTPUT_FILE, `${JSON.stringify(value, null, 2)}\n`);
  log(`summary written to ${path.relative(process.cwd(), OUTPUT_FILE)}`);
}

/** BENCH_ONLY: one part, a comma-separated list, or all (the default). */
function parts(value: string | undefined): Set<Part> {
  if (value === undefined || value === '' || value === 'all') return new Set(PARTS);
  const chosen = value.split(',').map((part) => part.trim());
  if (chosen.every((part): part is Part => (PARTS as string[]).includes(part))) return new Set(chosen);
  throw new Error(`BENCH_ONLY must be ${PARTS.join(', ')}, a comma-separated list of them, or all`);
}

function nonNegativeInteger(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number, 0 or more`);
  return value;
}

function positiveInteger(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function cleanUp(): Promise<void> {
  for (const release of [...cleanups].reverse()) {
    await release().catch((error: Error) => log(`cleanup failed: ${error.message}`));
  }
}

let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  log('interrupted; cleaning up');
  void cleanUp().finally(() => process.exit(130));
});

main()
  .then(async (code) => {
    await cleanUp();
    process.exit(code);
  })
  .catch(async (error: Error) => {
    // After Ctrl-C the cleanup pulls the databases from under the run; that failure is expected.
    if (interrupted) return;
    log(`failed: ${error.stack ?? error.message}`);
    await cleanUp();
    process.exit(1);
  });
