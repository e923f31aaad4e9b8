import type { Check } from './checks';
import { SERVER_MEMORY_MIB } from './servers';
import { measureDrain, measureThroughput } from './system-phases';
import { summarizeSystem, type DrainRound, type SystemSummary, type ThroughputRound } from './system-report';
import { measureTails, type TailRound, type TailSettings } from './system-tails';
import type { Track } from './worker';

/**
 * The whole system: ingest and worker processes together, as deployed. Each round measures,
 * each in a fresh database and queue prefix:
 * - acks/s and orders/s at saturation with 1 ingest + 1 worker and with 2 + 2;
 * - a backlog of BENCH_DRAIN_MESSAGES queued with no worker, drained by one worker, then by two;
 * - the ack tail at BENCH_TAIL_RATE req/s: (d) a freshly started ingest, (a) quiet, (c) with
 *   BENCH_BACKLOG messages in the queues, (b) right after a saturation burst.
 * The defaults follow the figures asked for (5 rounds, 50,000 and 100,000 messages, a 60 s
 * burst and the minute after it) and take 30 to 50 minutes on a 2-core machine.
 */
export interface SystemSettings {
  rounds: number;
  throughputSeconds: number;
  drainMessages: number;
  tails: TailSettings;
}

export function systemSettings(read: (name: string, fallback: number) => number): SystemSettings {
  return {
    rounds: read('BENCH_SYSTEM_ROUNDS', 5),
    throughputSeconds: read('BENCH_SYSTEM_SECONDS', 10),
    drainMessages: read('BENCH_DRAIN_MESSAGES', 50_000),
    tails: {
      rate: read('BENCH_TAIL_RATE', 500),
      seconds: read('BENCH_TAIL_SECONDS', 10),
      freshSeconds: read('BENCH_FRESH_SECONDS', 5),
      burstSeconds: read('BENCH_BURST_SECONDS', 60),
      afterBurstSeconds: read('BENCH_AFTER_BURST_SECONDS', 60),
      backlog: read('BENCH_BACKLOG', 100_000),
      settleSeconds: read('BENCH_SETTLE_SECONDS', 30),
    },
  };
}

export interface SystemRound {
  throughput: ThroughputRound;
  drain: DrainRound;
  tails: TailRound;
}

export async function runSystemBench(settings: SystemSettings, track: Track, log: (line: string) => void) {
  const perRound: SystemRound[] = [];
  for (let round = 1; round <= settings.rounds; round += 1) {
    const step = (name: string) => log(`system round ${round}/${settings.rounds}: ${name}`);
    step('1 ingest + 1 worker at saturation');
    const single = await measureThroughput(track, 1, settings.throughputSeconds);
    step('2 ingests + 2 workers at saturation');
    const double = await measureThroughput(track, 2, settings.throughputSeconds);
    step(`draining ${settings.drainMessages} messages with 1 worker`);
    const one = await measureDrain(track, settings.drainMessages, 1);
    step(`draining ${settings.drainMessages} messages with 2 workers`);
    const two = await measureDrain(track, settings.drainMessages, 2);
    step(`ack tails at ${settings.tails.rate} req/s`);
    const tails = await measureTails(track, settings.tails, log);
    perRound.push({ throughput: { single, double }, drain: { one, two }, tails });
    const missing = single.missing + double.missing + one.missing + two.missing + tails.missing;
    step(`done: ${single.acksPerSecond.toFixed(0)} / ${double.acksPerSecond.toFixed(0)} acks/s, drains ${one.seconds?.toFixed(1)} / ${two.seconds?.toFixed(1)} s, ` +
      `p99 quiet ${tails.quiet.p99.toFixed(1)} ms, after burst ${tails.afterBurst.p99.toFixed(1)} ms, ${missing} acks without a row`);
  }
  const summary: SystemSummary = summarizeSystem(perRound, {
    drainMessages: settings.drainMessages,
    tailRate: settings.tails.rate,
    serverMemoryLimitMib: SERVER_MEMORY_MIB,
  });
  return { summary, perRound, checks: systemChecks(perRound) };
}

function systemChecks(rounds: SystemRound[]): Check[] {
  const missing = rounds.reduce(
    (sum, r) => sum + r.throughput.single.missing + r.throughput.double.missing + r.drain.one.missing + r.drain.two.missing + r.tails.missing,
    0,
  );
  const undrained = rounds.filter((r) => r.drain.one.seconds === null || r.drain.two.seconds === null).length;
  const pacedRuns = rounds.flatMap((r, index) => {
    const { freshIngest, quiet, underBacklog, afterBurst } = r.tails;
    const phases = { '(d) first': freshIngest.first, '(d) next': freshIngest.next, '(a)': quiet, '(c)': underBacklog, '(b)': afterBurst };
    return Object.entries(phases).map(([phase, tail]) => ({ where: `round ${index + 1} ${phase}`, tail }));
  });
  const failed = pacedRuns.reduce((sum, run) => sum + run.tail.failed, 0);
  // What the failed requests got, and where: a status, or the socket error of one never answered.
  const failures = pacedRuns.filter((run) => run.tail.failed > 0).map((run) => `${run.where}: ${JSON.stringify(run.tail.failures)}`);
  return [
    { name: 'system: every 200 has a webhook_messages row', ok: missing === 0, detail: `${missing} acknowledged ids without a row` },
    { name: 'system: every backlog drained', ok: undrained === 0, detail: `${undrained} round(s) left messages queued or processing` },
    { name: 'system: every paced request answered 200', ok: failed === 0, detail: `${failed} paced requests not answered 200${failures.length > 0 ? ` (${failures.join('; ')})` : ''}` },
  ];
}
