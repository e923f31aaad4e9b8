import { everyRequestAcknowledged, verifyDurability, type Check } from './checks';
import { createBenchEnvironment } from './environment';
import { createMessageSource } from './messages';
import { medianOfRoundRatios, medianPhase, percent, podNote, table } from './report';
import { runScenarioA, runScenarioB, scenarioSettings, type PhaseContext, type PhaseResult } from './scenarios';
import { SERVER_MEMORY_MIB, startIngestServer } from './servers';
import type { Track } from './worker';

/**
 * ACK_AFTER=commit (the default) against ACK_AFTER=publish, side by side: two ingest
 * processes on one database and broker, loaded in turn in every round with the ingest part's
 * scenarios (A: saturation, B: a paced 500 req/s). The report gives the median of each figure
 * and the ratio publish / commit, so what waiting for the broker's confirm costs is measured
 * in one sitting.
 */
export interface AckAfterSummary {
  rounds: number;
  commit: { a: PhaseResult; b: PhaseResult };
  publish: { a: PhaseResult; b: PhaseResult };
  perRound: { commit: { a: PhaseResult; b: PhaseResult }; publish: { a: PhaseResult; b: PhaseResult } }[];
  /** The memory limit each ingest ran under (BENCH_SERVER_MEMORY_MIB); 0 for none. */
  serverMemoryLimitMib: number;
  checks: Check[];
}

export async function runAckAfterBench(rounds: number, seconds: number, track: Track, log: (line: string) => void): Promise<AckAfterSummary> {
  const env = await createBenchEnvironment();
  const releaseEnv = track(() => env.destroy());
  const commit = await startIngestServer({ ...env, memoryLimited: true });
  const releaseCommit = track(() => commit.stop());
  const publish = await startIngestServer({ ...env, extraEnv: { ACK_AFTER: 'publish' }, memoryLimited: true });
  const releasePublish = track(() => publish.stop());
  const context: PhaseContext = { settings: scenarioSettings(seconds), source: createMessageSource(env.runId, env.appSecret), sql: env.sql, ackedIds: [] };
  const perRound: AckAfterSummary['perRound'] = [];
  try {
    for (let round = 1; round <= rounds; round += 1) {
      log(`ack-after round ${round}/${rounds}: scenario A and B, ${commit.name} then ${publish.name}`);
      const a = { commit: await runScenarioA(commit, context), publish: await runScenarioA(publish, context) };
      const b = { commit: await runScenarioB(commit, context), publish: await runScenarioB(publish, context) };
      perRound.push({ commit: { a: a.commit, b: b.commit }, publish: { a: a.publish, b: b.publish } });
    }
    log(`checking ${context.ackedIds.length} acknowledged messages`);
    const measured = perRound.flatMap((round) => [round.commit.a, round.commit.b, round.publish.a, round.publish.b]);
    const checks = [
      ...(await verifyDurability(env, context.ackedIds)).map((check) => ({ ...check, name: `ack-after: ${check.name}` })),
      everyRequestAcknowledged('ack-after', measured),
    ];
    const median = (pick: (r: AckAfterSummary['perRound'][number]) => PhaseResult) => medianPhase(perRound.map(pick));
    return {
      rounds,
      commit: { a: median((r) => r.commit.a), b: median((r) => r.commit.b) },
      publish: { a: median((r) => r.publish.a), b: median((r) => r.publish.b) },
      perRound,
      serverMemoryLimitMib: SERVER_MEMORY_MIB,
      checks,
    };
  } finally {
    await releasePublish();
    await releaseCommit();
    await releaseEnv();
  }
}

export function formatAckAfterReport(summary: AckAfterSummary): string {
  const ms = (value: number) => value.toFixed(1);
  const row = (label: string, a: PhaseResult, b: PhaseResult) => [
    label,
    a.requestsPerSecond.toFixed(0),
    ms(b.latencyMs.p50),
    ms(b.latencyMs.p99),
    ms(b.latencyMs.max),
  ];
  const { commit, publish, perRound } = summary;
  // Taken round by round, then their median: the medians of the two settings may come from different rounds.
  const ofRounds = (pick: (round: AckAfterSummary['perRound'][number]) => PhaseResult) => perRound.map(pick);
  const throughputRatio = medianOfRoundRatios(ofRounds((r) => r.publish.a), ofRounds((r) => r.commit.a), (p) => p.requestsPerSecond);
  const tailRatio = medianOfRoundRatios(ofRounds((r) => r.publish.b), ofRounds((r) => r.commit.b), (p) => p.latencyMs.p99);
  return [
    `When the 200 goes out: ACK_AFTER=commit against ACK_AFTER=publish (medians of ${summary.rounds} round(s); ${podNote(summary.serverMemoryLimitMib)})`,
    ...table(
      ['ACK_AFTER', 'saturation req/s', 'p50 ms at 500/s', 'p99 ms at 500/s', 'max ms at 500/s'],
      [row('commit', commit.a, commit.b), row('publish', publish.a, publish.b)],
    ),
    `  publish / commit, the median of the rounds' ratios: throughput ${percent(throughputRatio)}, p99 at 500/s ${Number.isFinite(tailRatio) ? `${tailRatio.toFixed(2)}×` : '-'}`,
  ].join('\n');
}
