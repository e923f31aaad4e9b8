import type { LatencySummary } from './load';
import { podNote, table } from './report';
import { spread, type Spread } from './system-report';

/** The goal for genuine requests while an attack runs; shown for context, it does not fail the run. */
export const HOSTILE_P99_GOAL_MS = 50;

export interface HostileRun {
  attack: string;
  /** Attacking connections; 0 for the reference. */
  connections: number;
  latencyMs: LatencySummary;
  /** Genuine requests sent, answered 200, and answered otherwise or not at all. */
  sent: number;
  ok: number;
  notOk: number;
  /** From starting the attack until it held the ingest (see `established`). */
  establishMs: number;
  peakFds: number;
  /** The ingest's descriptors when the genuine load ended, just before the attack stopped: whether it still held. */
  heldFds: number;
  /** From stopping the attack until the ingest's descriptors were back near its baseline; null if never. */
  recoveryMs: number | null;
  /** What the ingest answered the attacker, by status code. */
  attackAnswers: Record<string, number>;
  /**
   * The attacker's requests the ingest answered per second (401, 400, 415, 431...), over the
   * attack's whole run: how hard an attack that reconnects at once actually pressed.
   */
  attackAnswersPerSecond: number;
  ingestAlive: boolean;
}

export interface HostileScenario {
  attack: string;
  connections: number;
  p50: Spread;
  p99: Spread;
  /** The worst single request over every round. */
  maxMs: number;
  notOk: number;
  /** Each round's p99 over that round's no-attack p99, so both come from the same conditions. */
  p99Ratio: Spread;
  attackAnswersPerSecond: Spread;
}

export interface HostileSummary {
  rounds: number;
  rate: number;
  seconds: number;
  scenarios: HostileScenario[];
  /** The memory limit the ingest ran under (BENCH_SERVER_MEMORY_MIB); 0 for none. */
  serverMemoryLimitMib: number;
  /** The ingest's peak RSS over every attack (VmHWM). */
  ingestPeakRssMib: number;
}

/** perRound[round][scenario], the reference first in every round. */
export function summarizeHostile(
  perRound: HostileRun[][],
  settings: { rate: number; seconds: number },
  memory: { serverMemoryLimitMib: number; ingestPeakRssMib: number },
): HostileSummary {
  const byScenario = perRound[0]!.map((_, index) => perRound.map((round) => round[index]!));
  const reference = perRound.map((round) => round[0]!.latencyMs.p99);
  const scenarios = byScenario.map((runs) => ({
    attack: runs[0]!.attack,
    connections: runs[0]!.connections,
    p50: spread(runs.map((run) => run.latencyMs.p50)),
    p99: spread(runs.map((run) => run.latencyMs.p99)),
    maxMs: Math.max(...runs.map((run) => run.latencyMs.max)),
    notOk: runs.reduce((sum, run) => sum + run.notOk, 0),
    p99Ratio: spread(runs.map((run, round) => (reference[round]! > 0 ? run.latencyMs.p99 / reference[round]! : null))),
    attackAnswersPerSecond: spread(runs.map((run) => run.attackAnswersPerSecond)),
  }));
  return { rounds: perRound.length, rate: settings.rate, seconds: settings.seconds, scenarios, ...memory };
}

export function formatHostileReport(summary: HostileSummary): string {
  const rows = summary.scenarios.map((scenario) => [
    scenario.attack,
    scenario.connections === 0 ? '-' : String(scenario.connections),
    ms(scenario.p50.median),
    `${ms(scenario.p99.median)} [${ms(scenario.p99.min)}–${ms(scenario.p99.max)}]`,
    ms(scenario.maxMs),
    String(scenario.notOk),
    scenario.p99Ratio.median === null ? '-' : `${scenario.p99Ratio.median.toFixed(2)}×`,
    scenario.p99.median === null ? '-' : scenario.p99.median < HOSTILE_P99_GOAL_MS ? 'met' : 'missed',
    scenario.connections === 0 ? '-' : (scenario.attackAnswersPerSecond.median ?? 0).toFixed(0),
  ]);
  return [
    `Hostile clients: genuine signed webhooks at ${summary.rate} req/s for ${summary.seconds} s while each attack runs ` +
      `against one ingest (median of ${summary.rounds} round(s), p99's range in brackets; max and not 200 over every round; ` +
      `${podNote(summary.serverMemoryLimitMib)})`,
    ...table(['', 'connections', 'p50 ms', 'p99 ms [range]', 'max ms', 'not 200', 'p99 / no attack', `p99 < ${HOSTILE_P99_GOAL_MS} ms`, 'attack answered/s'], rows),
    `  the ingest's peak RSS over every attack: ${summary.ingestPeakRssMib.toFixed(0)} MiB`,
  ].join('\n');
}

function ms(value: number | null): string {
  return value === null || !Number.isFinite(value) ? '-' : value.toFixed(1);
}
