import { startAttackProcess } from './attack-process';
import { ATTACKS, processUsage, type Attack, type AttackName, type AttackSpec } from './attacks';
import { verifyDurability, type Check } from './checks';
import { createBenchEnvironment } from './environment';
import { summarizeHostile, type HostileRun, type HostileSummary } from './hostile-report';
import { runPaced, type LoadResult } from './load';
import { createMessageSource, type MessageSource } from './messages';
import { lifetimePeakRssMib } from './probes';
import { SERVER_MEMORY_MIB, startIngestServer, type ServerProcess } from './servers';
import type { Track } from './worker';

export interface HostileSettings {
  /** Genuine requests per second while an attack runs. */
  rate: number;
  seconds: number;
  rounds: number;
}

export function hostileSettings(read: (name: string, fallback: number) => number): HostileSettings {
  return { rate: read('BENCH_HOSTILE_RATE', 100), seconds: read('BENCH_HOSTILE_SECONDS', 5), rounds: read('BENCH_HOSTILE_ROUNDS', 3) };
}

/** The reference (no attack) first, then every attack at the slow-client test's default size. */
const SCENARIOS: (AttackName | null)[] = [null, ...(Object.keys(ATTACKS) as AttackName[])];
const NO_ATTACK = 'no attack';
const WARMUP_SECONDS = 2;
/** Descriptors the ingest may hold above its baseline once an attack is over: pooled connections opened under load. */
const RECOVERED_FD_SLACK = 20;
const ESTABLISH_TIMEOUT_MS = 30_000;
/** Above the longest cut-off of a slow client (HTTP_REQUEST_TIMEOUT_MS, 30 s; a slow body's, WEBHOOK_BODY_TIMEOUT_MS, is 10 s), the longest the ingest may rightly take. */
const RECOVERY_TIMEOUT_MS = 40_000;
const STEADY_TIMEOUT_MS = 10_000;
const POLL_MS = 20;

interface Target {
  ingest: ServerProcess;
  source: MessageSource;
  settings: HostileSettings;
  /** The ingest's descriptors at rest after the warm-up. */
  baselineFds: number;
  ackedIds: string[];
}

/**
 * One ingest for the whole part, so each attack meets a warm process, as it would in service.
 * Each round runs the reference then every attack in turn, so that a neighbour's burst on a
 * shared machine falls on one scenario of a round rather than on every round of one scenario.
 */
export async function runHostileBench(settings: HostileSettings, track: Track, log: (line: string) => void) {
  const env = await createBenchEnvironment();
  const releaseEnv = track(() => env.destroy());
  // As a pod: an attack that grows the ingest's memory meets the limit a pod would.
  const ingest = await startIngestServer({ ...env, memoryLimited: true });
  const releaseIngest = track(() => ingest.stop());
  const source = createMessageSource(env.runId, env.appSecret);
  const ackedIds = (await runPaced(ingest.webhookUrl, source, settings.rate, WARMUP_SECONDS)).ackedIds;
  const baselineFds = await steadyFds(ingest);
  log(`hostile run ${env.runId}: ingest pid ${ingest.pid} at ${baselineFds} descriptors, ${settings.rounds} round(s) of ${SCENARIOS.length} scenarios`);
  const target: Target = { ingest, source, settings, baselineFds, ackedIds };
  const perRound: HostileRun[][] = [];
  for (let round = 1; round <= settings.rounds; round += 1) {
    const runs: HostileRun[] = [];
    for (const name of SCENARIOS) {
      const run = await runScenario(target, name);
      log(`hostile round ${round}/${settings.rounds}: ${describeRun(run)}`);
      runs.push(run);
    }
    perRound.push(runs);
  }
  const durability = await verifyDurability(env, ackedIds);
  const checks = [...hostileChecks(perRound, ingest, baselineFds), ...durability.map((check) => ({ ...check, name: `hostile: ${check.name}` }))];
  const summary: HostileSummary = summarizeHostile(perRound, settings, { serverMemoryLimitMib: SERVER_MEMORY_MIB, ingestPeakRssMib: lifetimePeakRssMib(ingest.pid) });
  await releaseIngest();
  await releaseEnv();
  return { summary, perRound, checks };
}

/** Starts the attack, waits until it holds the ingest, measures genuine requests, stops it, waits for the ingest to let go. */
async function runScenario(target: Target, name: AttackName | null): Promise<HostileRun> {
  const { ingest, settings } = target;
  const spec = name ? ATTACKS[name] : null;
  const before = fdsOf(ingest) ?? 0;
  const startedAt = performance.now();
  const attack = name && spec ? await startAttackProcess(name, Number(new URL(ingest.webhookUrl).port), spec.connections) : null;
  let peakFds = before;
  const sampler = setInterval(() => (peakFds = Math.max(peakFds, fdsOf(ingest) ?? 0)), 100);
  let establishMs = 0;
  let heldFds = before;
  let load: LoadResult;
  try {
    if (spec && attack && (await until(ingest, () => established(target, spec, attack), ESTABLISH_TIMEOUT_MS)) === null) {
      throw new Error(`${spec.name} did not establish within ${ESTABLISH_TIMEOUT_MS} ms`);
    }
    establishMs = spec ? performance.now() - startedAt : 0;
    load = await runPaced(ingest.webhookUrl, target.source, settings.rate, settings.seconds);
    heldFds = fdsOf(ingest) ?? 0;
  } finally {
    clearInterval(sampler);
    await attack?.stop();
  }
  const attackSeconds = (performance.now() - startedAt) / 1000;
  target.ackedIds.push(...load.ackedIds);
  const recoveryMs = await until(ingest, () => (fdsOf(ingest) ?? Infinity) <= target.baselineFds + RECOVERED_FD_SLACK, RECOVERY_TIMEOUT_MS);
  return {
    attack: spec?.name ?? NO_ATTACK,
    connections: spec?.connections ?? 0,
    latencyMs: load.latencyMs,
    sent: Math.round(settings.rate * settings.seconds),
    ok: load.ok,
    notOk: load.non2xx + load.errors,
    establishMs,
    peakFds,
    heldFds,
    recoveryMs,
    attackAnswers: Object.fromEntries(attack?.answers ?? []),
    attackAnswersPerSecond: [...(attack?.answers.values() ?? [])].reduce((sum, count) => sum + count, 0) / attackSeconds,
    ingestAlive: !ingest.exited(),
  };
}

/**
 * Held: the ingest has accepted the attacking connections (slowloris, slow body keep theirs
 * open), or has answered as many requests as there are connections (the others are cut off
 * and reconnect, so their descriptors never all show at once). Counted from the baseline
 * less the slack, as sockets of the previous attack may still be closing when this one starts
 * and idle pooled connections may have been let go.
 */
function established(target: Target, spec: AttackSpec, attack: Attack): boolean {
  const answered = [...attack.answers.values()].reduce((sum, count) => sum + count, 0);
  return (fdsOf(target.ingest) ?? 0) >= target.baselineFds - RECOVERED_FD_SLACK + spec.connections || answered >= spec.connections;
}

/** The descriptor count once it has not moved for half a second: keep-alive sockets of the warm-up closed, pools settled. */
async function steadyFds(ingest: ServerProcess): Promise<number> {
  let last = fdsOf(ingest);
  let since = performance.now();
  const settled = await until(ingest, () => {
    const now = fdsOf(ingest);
    if (now !== last) [last, since] = [now, performance.now()];
    return performance.now() - since >= 500;
  }, STEADY_TIMEOUT_MS);
  if (settled === null || last === null) throw new Error(`the ingest's descriptors did not settle within ${STEADY_TIMEOUT_MS} ms`);
  return last;
}

/** Polls until the condition holds; the ms it took, or null on timeout or if the ingest ended meanwhile. */
async function until(ingest: ServerProcess, condition: () => boolean, timeoutMs: number): Promise<number | null> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs && !ingest.exited()) {
    if (condition()) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return null;
}

function fdsOf(ingest: ServerProcess): number | null {
  try {
    return processUsage(ingest.pid).fds;
  } catch {
    return null;
  }
}

function hostileChecks(perRound: HostileRun[][], ingest: ServerProcess, baselineFds: number): Check[] {
  const runs = perRound.flat();
  const byScenario = perRound[0]!.map((_, index) => perRound.map((round) => round[index]!));
  const answered = byScenario.map((scenario) => {
    const sent = scenario.reduce((sum, run) => sum + run.sent, 0);
    const notOk = scenario.reduce((sum, run) => sum + run.notOk, 0);
    return { name: `hostile: every genuine request answered 200, ${scenario[0]!.attack}`, ok: notOk === 0, detail: `${sent - notOk} of ${sent} over ${scenario.length} round(s)` };
  });
  const dead = runs.filter((run) => !run.ingestAlive);
  const stuck = runs.filter((run) => run.recoveryMs === null);
  return [
    ...answered,
    { name: 'hostile: the ingest is still running after every attack', ok: dead.length === 0 && !ingest.exited(),
      detail: dead.length === 0 ? `alive after ${runs.length} scenarios` : `ended during ${dead[0]!.attack}` },
    { name: 'hostile: descriptors back near baseline after every attack', ok: stuck.length === 0,
      detail: `within ${RECOVERED_FD_SLACK} of ${baselineFds} ` + (stuck.length === 0 ? `after all ${runs.length} scenarios` : `never after ${stuck.map((run) => run.attack).join(', ')}`) },
  ];
}

function describeRun(run: HostileRun): string {
  const { p50, p99, max } = run.latencyMs;
  const recovery = run.recoveryMs === null ? 'descriptors never came back' : `back to baseline in ${run.recoveryMs.toFixed(0)} ms`;
  return `${run.attack}: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${max.toFixed(1)} ms, ${run.notOk} not 200; ` +
    `fds peak ${run.peakFds}, ${run.heldFds} at the end of the load, ${recovery}`;
}
