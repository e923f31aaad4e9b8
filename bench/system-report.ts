import { podNote } from './report';
import type { Tail, TailRound } from './system-tails';

/** A figure over the rounds: its median and its range, since one round on a shared 2-core machine varies by ±20 %. */
export interface Spread {
  median: number | null;
  min: number | null;
  max: number | null;
  rounds: number;
  /** Rounds that gave a value: a drain that did not finish within its bound gives none. */
  counted: number;
}

export function spread(values: (number | null)[]): Spread {
  const numbers = values.filter((value): value is number => value !== null && Number.isFinite(value)).sort((a, b) => a - b);
  if (numbers.length === 0) return { median: null, min: null, max: null, rounds: values.length, counted: 0 };
  const middle = Math.floor(numbers.length / 2);
  const median = numbers.length % 2 ? numbers[middle]! : (numbers[middle - 1]! + numbers[middle]!) / 2;
  return { median, min: numbers[0]!, max: numbers[numbers.length - 1]!, rounds: values.length, counted: numbers.length };
}

/** missing: acknowledged ids without a row, which must be 0. */
interface Throughput {
  acksPerSecond: number;
  ordersPerSecond: number;
  missing: number;
}
interface Drain {
  seconds: number | null;
  messagesPerSecond: number | null;
  missing: number;
}

export interface ThroughputRound {
  single: Throughput;
  double: Throughput;
}

export interface DrainRound {
  one: Drain;
  two: Drain;
}

type TailPart = 'sendLag' | 'serverAck' | 'commit' | 'slowCommits' | 'loopLag' | 'longGcs';
type TailPhase = 'quiet' | 'afterBurst' | 'underBacklog' | 'freshFirst' | 'freshNext';
const PHASES: Record<TailPhase, (tails: TailRound) => Tail> = {
  quiet: (t) => t.quiet,
  afterBurst: (t) => t.afterBurst,
  underBacklog: (t) => t.underBacklog,
  freshFirst: (t) => t.freshIngest.first,
  freshNext: (t) => t.freshIngest.next,
};

export interface SystemSummary {
  rounds: number;
  drainMessages: number;
  tailRate: number;
  throughput: Record<'acks1' | 'acks2' | 'acksRatio' | 'orders1' | 'orders2' | 'ordersRatio', Spread>;
  drain: Record<'seconds1' | 'seconds2' | 'speedup', Spread>;
  tails: Record<TailPhase, Record<'p50' | 'p99' | 'max', Spread>>;
  /** Where each phase's tail was spent: the generator's lateness, the ingest's own ack time and its group commits (p99s). */
  tailParts: Record<TailPhase, Record<TailPart, Spread>>;
  queuedDuringBacklog: Spread;
  /** The memory limit of each ingest and worker (BENCH_SERVER_MEMORY_MIB); 0 for none. */
  serverMemoryLimitMib: number;
}

const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : a / b);

export function summarizeSystem(
  rounds: { throughput: ThroughputRound; drain: DrainRound; tails: TailRound }[],
  settings: { drainMessages: number; tailRate: number; serverMemoryLimitMib: number },
): SystemSummary {
  const over = (pick: (round: (typeof rounds)[number]) => number | null) => spread(rounds.map(pick));
  const tail = (pick: (tails: TailRound) => Tail) => ({
    p50: over((round) => pick(round.tails).p50),
    p99: over((round) => pick(round.tails).p99),
    max: over((round) => pick(round.tails).max),
  });
  const parts = (pick: (tails: TailRound) => Tail) => ({
    sendLag: over((round) => pick(round.tails).sendLagMs.p99),
    serverAck: over((round) => pick(round.tails).serverAckMs.p99),
    commit: over((round) => pick(round.tails).commitMs.p99),
    slowCommits: over((round) => pick(round.tails).commitMs.atLeast50Ms),
    loopLag: over((round) => pick(round.tails).loopLagMaxMs),
    longGcs: over((round) => pick(round.tails).gc.atLeast100Ms),
  });
  const perPhase = <T>(make: (pick: (tails: TailRound) => Tail) => T) =>
    Object.fromEntries(Object.entries(PHASES).map(([phase, pick]) => [phase, make(pick)])) as Record<TailPhase, T>;
  return {
    rounds: rounds.length,
    drainMessages: settings.drainMessages,
    tailRate: settings.tailRate,
    serverMemoryLimitMib: settings.serverMemoryLimitMib,
    throughput: {
      acks1: over((r) => r.throughput.single.acksPerSecond),
      acks2: over((r) => r.throughput.double.acksPerSecond),
      acksRatio: over((r) => ratio(r.throughput.double.acksPerSecond, r.throughput.single.acksPerSecond)),
      orders1: over((r) => r.throughput.single.ordersPerSecond),
      orders2: over((r) => r.throughput.double.ordersPerSecond),
      ordersRatio: over((r) => ratio(r.throughput.double.ordersPerSecond, r.throughput.single.ordersPerSecond)),
    },
    drain: {
      seconds1: over((r) => r.drain.one.seconds),
      seconds2: over((r) => r.drain.two.seconds),
      speedup: over((r) => ratio(r.drain.one.seconds, r.drain.two.seconds)),
    },
    tails: perPhase(tail),
    tailParts: perPhase(parts),
    queuedDuringBacklog: over((r) => r.tails.underBacklog.queued),
  };
}

export function formatSpread(value: Spread, digits: number, unit = ''): string {
  if (value.median === null) return 'n/a';
  const f = (n: number) => n.toFixed(digits);
  const figure = value.counted > 1 ? `${f(value.median)}${unit} [${f(value.min!)}–${f(value.max!)}]` : `${f(value.median)}${unit}`;
  // The header says "median of N rounds": a figure taken over fewer says so itself.
  return value.counted < value.rounds ? `${figure} (${value.counted} of ${value.rounds} rounds)` : figure;
}

function tailRow(label: string, figures: Record<'p50' | 'p99' | 'max', Spread>): string {
  return `  ${label.padEnd(44)} ${formatSpread(figures.p50, 1).padEnd(20)} ${formatSpread(figures.p99, 1).padEnd(22)} ${formatSpread(figures.max, 1)}`;
}

function partsRow(label: string, figures: Record<TailPart, Spread>): string {
  const columns = [formatSpread(figures.sendLag, 1).padEnd(20), formatSpread(figures.serverAck, 1).padEnd(20), formatSpread(figures.commit, 1).padEnd(20), formatSpread(figures.slowCommits, 0).padEnd(20), formatSpread(figures.loopLag, 1).padEnd(20), formatSpread(figures.longGcs, 0)];
  return `  ${label.padEnd(44)} ${columns.join(' ')}`;
}

export function formatSystemReport(summary: SystemSummary): string {
  const { throughput: t, drain: d, tails } = summary;
  const pct = (value: Spread) => formatSpread({ ...value, median: value.median && value.median * 100, min: value.min && value.min * 100, max: value.max && value.max * 100 }, 0, ' %');
  return [
    `Whole system: median of ${summary.rounds} round(s) [min–max] (${podNote(summary.serverMemoryLimitMib)})`,
    `  ${''.padEnd(22)} ${'1 ingest + 1 worker'.padEnd(24)} ${'2 ingests + 2 workers'.padEnd(24)} 2+2 / 1+1`,
    `  ${'acks/s'.padEnd(22)} ${formatSpread(t.acks1, 0).padEnd(24)} ${formatSpread(t.acks2, 0).padEnd(24)} ${pct(t.acksRatio)}`,
    `  ${'orders/s'.padEnd(22)} ${formatSpread(t.orders1, 0).padEnd(24)} ${formatSpread(t.orders2, 0).padEnd(24)} ${pct(t.ordersRatio)}`,
    '',
    `Backlog drain: ${summary.drainMessages} messages queued with no worker, then drained`,
    `  1 worker: ${formatSpread(d.seconds1, 1, ' s')}   2 workers: ${formatSpread(d.seconds2, 1, ' s')}   speed-up: ${formatSpread(d.speedup, 2, '×')}`,
    '',
    `Ack latency at ${summary.tailRate} req/s, open loop, from when each request was due (ms)`,
    `  ${''.padEnd(44)} ${'p50'.padEnd(20)} ${'p99'.padEnd(22)} max`,
    tailRow('(a) quiet', tails.quiet),
    tailRow('(b) right after a saturation burst', tails.afterBurst),
    tailRow(`(c) ${formatSpread(summary.queuedDuringBacklog, 0)} queued`, tails.underBacklog),
    tailRow('(d) a fresh ingest, first seconds', tails.freshFirst),
    tailRow('    the same process, next seconds', tails.freshNext),
    '',
    'Where the tail was spent (ms): p99s of the generator\'s lateness, the ingest\'s acks and commits (from its histogram buckets); how many commits took 50 ms or more; the ingest\'s longest event-loop delay; its GC pauses of 100 ms or more (count)',
    `  ${''.padEnd(44)} ${['generator sent late', 'ingest ack', 'group commit', 'commits ≥ 50 ms', 'event loop, max', 'GC pauses ≥ 100 ms'].map((title) => title.padEnd(20)).join(' ')}`,
    partsRow('(a) quiet', summary.tailParts.quiet),
    partsRow('(b) right after a saturation burst', summary.tailParts.afterBurst),
    partsRow('(c) under the backlog', summary.tailParts.underBacklog),
    partsRow('(d) a fresh ingest, first seconds', summary.tailParts.freshFirst),
    partsRow('    the same process, next seconds', summary.tailParts.freshNext),
  ].join('\n');
}
