import os from 'node:os';
import { shardPrefetch } from '../src/worker/shard-prefetch';
import type { ScaleRun } from './scale-out';
import { podNote } from './report';

export interface ScaleSummary {
  rounds: number;
  /** One entry per worker count, medians over the rounds. */
  byWorkers: {
    workers: number;
    messagesPerSecond: number;
    seconds: number;
    speedUp: number;
    perRound: number[];
    shardsPerWorker: number[];
    throttledShare: number;
    workerCpuMsPerMessage: number;
    postgresCpuMsPerMessage: number;
    postgresBackendsCpuMsPerMessage: number;
    machineBusyCores: number;
    /** Mean messages per claim and per decision write (the round's medians). */
    meanClaimItems: number;
    meanRecordItems: number;
  }[];
  goals: Record<number, number>;
  loadAverage: number[];
}

/** Speed-ups the issue asks for: 2 workers 1.6 times one, 3 workers 2.2 times. */
export const SCALE_GOALS: Record<number, number> = { 2: 1.6, 3: 2.2 };

export function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function summarizeScale(runs: ScaleRun[][], loadAverage: number[]): ScaleSummary {
  const counts = [...new Set(runs.flat().map((run) => run.workers))].sort((a, b) => a - b);
  const rateOf = (workers: number) => median(runs.flat().filter((run) => run.workers === workers).map((run) => run.messagesPerSecond));
  const base = rateOf(counts[0] ?? 1);
  return {
    rounds: runs.length,
    goals: SCALE_GOALS,
    loadAverage,
    byWorkers: counts.map((workers) => {
      const mine = runs.flat().filter((run) => run.workers === workers);
      const last = mine[mine.length - 1]!;
      return {
        workers,
        messagesPerSecond: rateOf(workers),
        seconds: median(mine.map((run) => run.seconds)),
        speedUp: rateOf(workers) / base,
        perRound: mine.map((run) => run.messagesPerSecond),
        shardsPerWorker: last.shardsPerWorker,
        throttledShare: median(mine.flatMap((run) => run.throttledShares)),
        workerCpuMsPerMessage: median(mine.map((run) => run.workerCpuMsPerMessage)),
        postgresCpuMsPerMessage: median(mine.map((run) => run.postgresCpuMsPerMessage)),
        postgresBackendsCpuMsPerMessage: median(mine.map((run) => run.postgresBackendsCpuMsPerMessage)),
        machineBusyCores: median(mine.map((run) => run.machineBusyCores)),
        meanClaimItems: median(mine.map((run) => run.meanBatchItems.claim ?? NaN)),
        meanRecordItems: median(mine.map((run) => run.meanBatchItems.record ?? NaN)),
      };
    }),
  };
}

export function formatScaleReport(
  summary: ScaleSummary,
  spec: { messages: number; shards: number; coresPerWorker: number; prefetch: number; messagesInHand: number; warmUpPerWorker: number; serverMemoryLimitMib: number },
): string {
  const rows = summary.byWorkers.map((entry) => {
    const goal = summary.goals[entry.workers];
    return [
      String(entry.workers),
      entry.messagesPerSecond.toFixed(0),
      entry.seconds.toFixed(2),
      `${entry.speedUp.toFixed(2)}×${goal ? ` (goal ${goal}×)` : ''}`,
      entry.perRound.map((rate) => rate.toFixed(0)).join(' / '),
      entry.shardsPerWorker.join('/'),
      String(shardPrefetch({ perShard: spec.prefetch, inHand: spec.messagesInHand }, Math.max(...entry.shardsPerWorker))),
      `${(entry.throttledShare * 100).toFixed(0)} %`,
      entry.workerCpuMsPerMessage.toFixed(2),
      `${entry.postgresCpuMsPerMessage.toFixed(2)} (${entry.postgresBackendsCpuMsPerMessage.toFixed(2)})`,
      entry.machineBusyCores.toFixed(2),
      `${entry.meanClaimItems.toFixed(1)} / ${entry.meanRecordItems.toFixed(1)}`,
    ];
  });
  const header = ['workers', 'messages/s', 'seconds', 'speed-up', 'each round', 'shards held', 'prefetch per shard', 'throttled', 'worker CPU ms/msg', 'Postgres CPU ms/msg (backends)', 'machine busy cores', 'claim / record items'];
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => `  ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ')}`;
  return [
    `Worker scale-out: each worker process in its own cgroup limited to ${spec.coresPerWorker} core, ${spec.shards} shards, ` +
      `${spec.messages} pre-loaded messages, WORKER_PREFETCH ${spec.prefetch}, WORKER_MESSAGES_IN_HAND ${spec.messagesInHand}, 0 ms provider, ` +
      `${spec.warmUpPerWorker > 0 ? `workers warmed up by ${spec.warmUpPerWorker} messages each` : 'fresh workers'} (medians of ${summary.rounds} rounds; ` +
      `load average at the end ${summary.loadAverage.map((l) => l.toFixed(1)).join(' ')}; ${podNote(spec.serverMemoryLimitMib)})`,
    line(header),
    ...rows.map(line),
    '  "throttled": share of each worker\'s CPU periods in the run that its quota cut short (near 100 % means CPU-bound).',
    '  "worker CPU ms/msg": CPU time all the workers used over the drain, per message; "Postgres CPU ms/msg" the same for every Postgres process',
    '  (in brackets, the backends serving the bench\'s database; the rest is Postgres\'s background work: WAL writer, checkpointer, autovacuum).',
    `  "machine busy cores": the machine's busy time over the drain, of its ${os.cpus().length} cores; "claim / record items": mean messages per claim and per decision write.`,
  ].join('\n');
}
