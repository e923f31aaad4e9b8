import { shardPrefetch } from '../src/worker/shard-prefetch';
import type { Check } from './checks';
import type { PhaseResult, ScenarioSettings } from './scenarios';
import type { WorkerRun } from './worker';

/** wagate's performance targets (README, Performance); shown for context, they do not fail the run. */
export const TARGETS = { minThroughputRatio: 0.5, maxP99AtRateMs: 20, maxRssMb: 250, maxBackendCostRatio: 2 };
const MS_PER_SECOND = 1000;

export interface Summary {
  rounds: number;
  settings: ScenarioSettings;
  /**
   * throughputRatio: the median of each round's durable/bare ratio (both phases of a round run
   * back to back). ceiling: the durable ceiling taken the same way (roundCeilings); without it,
   * it is computed from the two median phases.
   */
  scenarioA: { bare: PhaseResult; durable: PhaseResult; throughputRatio: number; ceiling?: Ceiling };
  /**
   * backendCostRatio: the median of each round's backend cost at B's rate over its cost at
   * saturation (A). backendCostRatioNetOfIdle: the same with the backends' idle CPU taken out
   * of both, as measured during the round's bare phase just before (backendNetCoresPerThousand).
   */
  scenarioB: { bare: PhaseResult; durable: PhaseResult; backendCostRatio?: number; backendCostRatioNetOfIdle?: number };
  lifetimePeakRssMib: { bare: number; durable: number };
  /** The memory limit each server ran under (BENCH_SERVER_MEMORY_MIB); 0 for none. */
  serverMemoryLimitMib: number;
  /** The machine's cores, which the servers, their backends and the load generator all share. */
  machineCores: number;
  checks: Check[];
}

export interface WorkerSummary {
  rounds: number;
  /** The median of each figure over the rounds, one entry per run (provider latency, prefetch). */
  runs: Omit<WorkerRun, 'checks'>[];
  checks: Check[];
  /** Retries or redeliveries in any round: handled (the checks still hold), but not the happy path. */
  notes: string[];
  /** The memory limit the worker ran under (BENCH_SERVER_MEMORY_MIB); 0 for none. */
  serverMemoryLimitMib: number;
}

/**
 * A ratio of two phases taken per round, then the median over the rounds: the ratio of two
 * medians can come from two different rounds, and on a noisy machine land outside every
 * round's own value.
 */
export function medianOfRoundRatios(numerators: PhaseResult[], denominators: PhaseResult[], of: (phase: PhaseResult) => number): number {
  const ratios = numerators.map((phase, round) => of(phase) / of(denominators[round]!));
  return (medianOf(ratios) as number | null) ?? NaN;
}

/** With several rounds, each figure is the median of that figure over the rounds. */
export function medianPhase(phases: PhaseResult[]): PhaseResult {
  return medianOf(phases) as PhaseResult;
}

/** Medians of one worker run over the rounds; its checks are kept apart (see mergeChecks). */
export function medianWorkerRun(runs: WorkerRun[]): Omit<WorkerRun, 'checks'> {
  return medianOf(runs.map(({ checks: _checks, ...figures }) => figures)) as Omit<WorkerRun, 'checks'>;
}

/** The same check over several rounds: ok only if it held in every round. */
export function mergeChecks(rounds: Check[][]): Check[] {
  if (rounds.length <= 1) return rounds[0] ?? [];
  return rounds[0]!.map((check, index) => {
    const all = rounds.map((checks) => checks[index]!);
    const failed = all.filter((each) => !each.ok);
    const shown = failed[0] ?? all[all.length - 1]!;
    return { name: check.name, ok: failed.length === 0, detail: `${all.length - failed.length}/${all.length} rounds ok; ${shown.detail}` };
  });
}

/**
 * A figure missing from one round (an outbox that never drained, a ratio over nothing) makes
 * its median null, shown as '-': the median of the other rounds would hide the worst one.
 */
export function medianOf(values: unknown[]): unknown {
  const first = values[0];
  if (typeof first === 'number' || first === null) {
    const numbers = values.filter((value): value is number => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b);
    if (numbers.length === 0 || numbers.length < values.length) return null;
    const middle = Math.floor(numbers.length / 2);
    return numbers.length % 2 ? numbers[middle] : (numbers[middle - 1]! + numbers[middle]!) / 2;
  }
  if (typeof first === 'object' && first !== null) {
    return Object.fromEntries(Object.keys(first).map((key) => [key, medianOf(values.map((value) => (value as Record<string, unknown>)[key]))]));
  }
  return first;
}

export function formatReport(summary: Summary): string {
  const { scenarioA: a, scenarioB: b, settings } = summary;
  const rounds = summary.rounds > 1 ? ` (median of ${summary.rounds} rounds)` : '';
  const lines = [
    `Scenario A: closed loop, ${settings.a.connections} connections, ${settings.a.seconds} s after a ${settings.a.warmupSeconds} s warm-up${rounds}`,
    ...table(['', a.bare.server, a.durable.server, 'durable/bare'], [
      ['requests/s', fixed(a.bare.requestsPerSecond, 0), fixed(a.durable.requestsPerSecond, 0), percent(a.throughputRatio)],
      ...phaseRows(a.bare, a.durable),
    ]),
    '',
    `Scenario B: open loop at ${settings.b.rate} req/s, ${settings.b.seconds} s after a ${settings.b.warmupSeconds} s warm-up${rounds}`,
    ...table(['', b.bare.server, b.durable.server], [
      ['achieved req/s', fixed(b.bare.requestsPerSecond, 0), fixed(b.durable.requestsPerSecond, 0)],
      ...phaseRows(b.bare, b.durable),
    ]),
    '',
    'Inside the durable path (from the ingest\'s /metrics)',
    ...table(['', 'scenario A', 'scenario B'], internalsRows(a.durable, b.durable)),
    '',
    'CPU per request at saturation (scenario A), ms of one core',
    ...table(['', a.bare.server, a.durable.server], cpuPerRequestRows(a.bare, a.durable)),
    `  ${ceilingSentence(summary)}`,
    '',
    `Lifetime peak RSS (VmHWM): ${a.bare.server} ${fixed(summary.lifetimePeakRssMib.bare, 0)} MiB, ` +
      `${a.durable.server} ${fixed(summary.lifetimePeakRssMib.durable, 0)} MiB ` +
      `(${podNote(summary.serverMemoryLimitMib)})`,
    '',
    'Targets (for context)',
    ...targetLines(summary).map((line) => `  ${line}`),
  ];
  return lines.join('\n');
}

/** How the servers ran: as pods (a memory limit and their pod's NODE_OPTIONS) or not. */
export function podNote(memoryLimitMib: number): string {
  return memoryLimitMib > 0
    ? `each server limited to ${memoryLimitMib} MiB and run with its pod's NODE_OPTIONS (the image's; a worker's from the chart's worker.nodeOptions); BENCH_SERVER_MEMORY_MIB`
    : 'no memory limit: V8 sizes its heap from the whole machine';
}

export function formatWorkerReport(summary: WorkerSummary): string {
  const runs = summary.runs;
  const first = runs[0]!;
  const rounds = summary.rounds > 1 ? ` (median of ${summary.rounds} rounds)` : '';
  const row = (label: string, pick: (run: Omit<WorkerRun, 'checks'>) => string) => [label, ...runs.map(pick)];
  return [
    `Worker: one \`wagate worker\` process draining pre-loaded queues, fake Graph API, ${first.shards} shards, ` +
      `${first.senders} senders${rounds} (${podNote(summary.serverMemoryLimitMib)})`,
    ...table(['', ...runs.map((run) => run.label)], [
      row('provider latency ms', (r) => String(r.providerLatencyMs)),
      row('WORKER_PREFETCH / _MESSAGES_IN_HAND', (r) => `${r.prefetch} / ${r.messagesInHand}`),
      row('prefetch per shard consumer', (r) => String(shardPrefetch({ perShard: r.prefetch, inHand: r.messagesInHand }, r.shards))),
      row('messages (asking for an order)', (r) => `${r.messages} (${r.orderMessages})`),
      row('orders/s', (r) => fixed(r.ordersPerSecond, 0)),
      row('messages/s', (r) => fixed(r.messagesPerSecond, 0)),
      row('seconds, start to last processed', (r) => fixed(r.seconds, 2)),
      row('in progress, mean (rate × time)', (r) => fixed(r.meanInProgress, 1)),
      row('processing ms, mean', (r) => fixed(r.processingMs.mean, 2)),
      row('processing ms, p99 (buckets)', (r) => fixed(r.processingMs.p99, 1)),
      row('provider call ms, mean', (r) => fixed(r.providerMs.mean, 2)),
      row('retried / skipped / extra claims', (r) => `${r.retried} / ${r.skipped} / ${r.extraClaims}`),
      row('worker peak RSS MiB (VmHWM)', (r) => fixed(r.peakRssMib, 0)),
      row('CPU cores: worker', (r) => fixed(r.cpuCores.server, 2)),
      row('CPU cores: postgres', (r) => fixed(r.cpuCores.postgres, 2)),
      row('  of which this database', (r) => fixed(r.cpuCores.postgresDatabase, 2)),
      row('CPU cores: rabbitmq', (r) => fixed(r.cpuCores.rabbitmq, 2)),
      row('CPU cores: bench + fake provider', (r) => fixed(r.cpuCores.loadGenerator, 2)),
      row('CPU cores: other', (r) => fixed(r.cpuCores.other, 2)),
      row('worker DB connections (mean seen)', (r) => fixed(r.connections.meanConnections, 1)),
      row('  running a query', (r) => percent(r.connections.running)),
      row('  waiting in postgres (WAL, locks)', (r) => percent(r.connections.waitingInPostgres)),
      row('  idle: waiting for the worker', (r) => percent(r.connections.waitingForWorker)),
      row("start-up ms: to 'worker started'", (r) => fixed(r.startupMs.workerStarted, 0)),
      row('start-up ms: to first processed', (r) => fixed(r.startupMs.firstProcessed, 0)),
      row('pre-load through ingest, req/s', (r) => fixed(r.preload.requestsPerSecond, 0)),
    ]),
    ...(summary.notes.length > 0 ? ['', ...summary.notes.map((note) => `  note: ${note}`)] : []),
  ].join('\n');
}

export function formatChecks(checks: Check[]): string {
  return ['Checks', ...checks.map((check) => `  ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`)].join('\n');
}

function phaseRows(bare: PhaseResult, durable: PhaseResult): string[][] {
  const row = (label: string, pick: (phase: PhaseResult) => string) => [label, pick(bare), pick(durable)];
  return [
    row('latency p50 ms', (p) => fixed(p.latencyMs.p50, 2)),
    row('latency p90 ms', (p) => fixed(p.latencyMs.p90, 2)),
    row('latency p99 ms', (p) => fixed(p.latencyMs.p99, 2)),
    row('latency max ms', (p) => fixed(p.latencyMs.max, 2)),
    row('2xx', (p) => String(p.ok)),
    row('non-2xx / errors', (p) => `${p.non2xx} / ${p.errors}`),
    row('peak RSS MiB', (p) => fixed(p.peakRssMib, 0)),
    row('CPU cores: server', (p) => fixed(p.cpuCores.server, 2)),
    row('CPU cores: postgres', (p) => fixed(p.cpuCores.postgres, 2)),
    row('CPU cores: rabbitmq', (p) => fixed(p.cpuCores.rabbitmq, 2)),
    row('CPU cores: load gen', (p) => fixed(p.cpuCores.loadGenerator, 2)),
    row('CPU cores: other', (p) => fixed(p.cpuCores.other, 2)),
    row('backend cores per 1k req/s', (p) => fixed(backendCoresPerThousand(p), 3)),
    // The bare server's backends are idle: its column is the baseline the durable one is net of.
    ['backend cores per 1k req/s, net of idle', '-', fixed(backendNetCoresPerThousand(durable, bare), 3)],
  ];
}

function cpuPerRequestRows(bare: PhaseResult, durable: PhaseResult): string[][] {
  const perRequest = (phase: PhaseResult, cores: number) => fixed((cores / phase.requestsPerSecond) * MS_PER_SECOND, 3);
  const row = (label: string, pick: (phase: PhaseResult) => number) => [label, perRequest(bare, pick(bare)), perRequest(durable, pick(durable))];
  return [
    row('server', (p) => p.cpuCores.server),
    row('postgres + rabbitmq', (p) => p.cpuCores.postgres + p.cpuCores.rabbitmq),
    row('load generator', (p) => p.cpuCores.loadGenerator),
    row('all of them', (p) => sharedCores(p)),
  ];
}

/** The cores one phase kept busy on the machine: the server, its backends and the load generator. */
function sharedCores(phase: PhaseResult): number {
  const { server, postgres, rabbitmq, loadGenerator } = phase.cpuCores;
  return server + postgres + rabbitmq + loadGenerator;
}

/**
 * The most the durable path could do on this machine if every core were busy at the CPU per
 * request measured, as a share of bare express: the ratio cannot pass it without making
 * requests cheaper somewhere (the ingest, Postgres, RabbitMQ or the load generator).
 */
export function durableCeiling(summary: Summary): Ceiling {
  return summary.scenarioA.ceiling ?? ceilingOf(summary.scenarioA.bare, summary.scenarioA.durable, summary.machineCores);
}

export interface Ceiling {
  requestsPerSecond: number;
  ratio: number;
}

function ceilingOf(bare: PhaseResult, durable: PhaseResult, machineCores: number): Ceiling {
  const requestsPerSecond = machineCores / (sharedCores(durable) / durable.requestsPerSecond);
  return { requestsPerSecond, ratio: requestsPerSecond / bare.requestsPerSecond };
}

/** The ceiling of each round (its own costs and its own bare rate), then the median of each figure. */
export function roundCeilings(bare: PhaseResult[], durable: PhaseResult[], machineCores: number): Ceiling {
  return medianOf(durable.map((phase, round) => ceilingOf(bare[round]!, phase, machineCores))) as Ceiling;
}

function ceilingSentence(summary: Summary): string {
  const ceiling = durableCeiling(summary);
  const { bare, durable } = summary.scenarioA;
  return (
    `With all ${summary.machineCores} cores busy at these costs, ${durable.server} could ack at most ` +
    `${fixed(ceiling.requestsPerSecond, 0)} req/s: ${percent(ceiling.ratio)} of ${bare.server}'s ${fixed(bare.requestsPerSecond, 0)}`
  );
}

/** Postgres and RabbitMQ CPU per 1,000 requests/s: what each message costs the backends. */
export function backendCoresPerThousand(phase: PhaseResult): number {
  return backendCores(phase) / (phase.requestsPerSecond / 1000);
}

/**
 * The same, less what the backends burn with no message at all: Postgres's background
 * processes, RabbitMQ's idle VM and queues, the idle ingest's outbox sweeps. `idle` is the
 * bare phase run just before: it sends nothing to the backends, and the CPU counters are
 * machine-wide, so they saw the backends idle at the same time of the same round. At
 * saturation the idle share is small; at a low rate it is a large part of the gross figure.
 */
export function backendNetCoresPerThousand(phase: PhaseResult, idle: PhaseResult): number {
  return Math.max(0, backendCores(phase) - backendCores(idle)) / (phase.requestsPerSecond / 1000);
}

/** Each round's net backend cost at B's rate over its net cost at saturation (A), the median over the rounds. */
export function medianNetBackendCostRatio(phases: { aBare: PhaseResult[]; aDurable: PhaseResult[]; bBare: PhaseResult[]; bDurable: PhaseResult[] }): number {
  const ratios = phases.bDurable.map((b, round) =>
    backendNetCoresPerThousand(b, phases.bBare[round]!) / backendNetCoresPerThousand(phases.aDurable[round]!, phases.aBare[round]!));
  return (medianOf(ratios) as number | null) ?? NaN;
}

function backendCores(phase: PhaseResult): number {
  return phase.cpuCores.postgres + phase.cpuCores.rabbitmq;
}

function internalsRows(a: PhaseResult, b: PhaseResult): string[][] {
  const row = (label: string, pick: (phase: PhaseResult) => number | null | undefined, digits: number) => [
    label,
    fixed(pick(a), digits),
    fixed(pick(b), digits),
  ];
  return [
    row('ledger batches', (p) => p.ingest?.ledgerBatchItems.count, 0),
    row('items per batch, mean', (p) => p.ingest?.ledgerBatchItems.mean, 1),
    row('commit ms, mean', (p) => (p.ingest?.ledgerCommitSeconds.mean ?? NaN) * MS_PER_SECOND, 2),
    row('commit ms, p99 (buckets)', (p) => (p.ingest?.ledgerCommitSeconds.p99 ?? NaN) * MS_PER_SECOND, 2),
    row('publish+confirm ms, mean', (p) => (p.ingest?.publishSeconds.mean ?? NaN) * MS_PER_SECOND, 2),
    row('server ack ms, mean', (p) => (p.ingest?.ackSeconds.mean ?? NaN) * MS_PER_SECOND, 2),
    row('server ack ms, p99 (buckets)', (p) => (p.ingest?.ackSeconds.p99 ?? NaN) * MS_PER_SECOND, 2),
    row('outbox drain after load, ms', (p) => p.outboxDrainMs, 0),
  ];
}

function targetLines(summary: Summary): string[] {
  const ratio = summary.scenarioA.throughputRatio;
  const p99 = summary.scenarioB.durable.latencyMs.p99;
  // The kernel counts in KiB; the target is in MB (10^6 bytes), a 5 % difference at this size.
  const rssMb = (summary.lifetimePeakRssMib.durable * 1024 * 1024) / 1e6;
  // A figure missing from a round has no median (null): neither met nor missed.
  const mark = (met: boolean, ...figures: (number | null | undefined)[]) =>
    (figures.some((figure) => typeof figure !== 'number' || !Number.isFinite(figure)) ? 'no data' : met ? 'met   ' : 'missed');
  const { connections } = summary.settings.a;
  const backendCost = summary.scenarioB.backendCostRatio ?? backendCoresPerThousand(summary.scenarioB.durable) / backendCoresPerThousand(summary.scenarioA.durable);
  return [
    `${mark(ratio >= TARGETS.minThroughputRatio, ratio)} durable >= ${percent(TARGETS.minThroughputRatio)} of bare throughput ` +
      `at ${connections} connections: ${percent(ratio)} (at most ${percent(durableCeiling(summary).ratio)} on these cores, see above)`,
    `${mark(p99 < TARGETS.maxP99AtRateMs, p99)} durable p99 < ${TARGETS.maxP99AtRateMs} ms at ${summary.settings.b.rate} req/s: ${fixed(p99, 2)} ms`,
    `${mark(rssMb < TARGETS.maxRssMb, rssMb)} durable RSS < ${TARGETS.maxRssMb} MB: ${fixed(rssMb, 0)} MB`,
    `${mark(backendCost <= TARGETS.maxBackendCostRatio, backendCost)} backend CPU per message at ${summary.settings.b.rate} req/s ` +
      `<= ${TARGETS.maxBackendCostRatio}x its cost at saturation: ${fixed(backendCost, 2)}x` +
      (summary.scenarioB.backendCostRatioNetOfIdle === undefined ? '' : ` (net of the backends' idle CPU: ${fixed(summary.scenarioB.backendCostRatioNetOfIdle, 2)}x)`),
  ];
}

export function table(header: string[], rows: string[][]): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  const align = (cell: string, column: number) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!));
  return all.map((row) => `  ${row.map(align).join('   ')}`);
}

function fixed(value: number | null | undefined, digits: number): string {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '-';
}

export function percent(ratio: number | null | undefined): string {
  return typeof ratio === 'number' && Number.isFinite(ratio) ? `${(ratio * 100).toFixed(1)} %` : '-';
}
