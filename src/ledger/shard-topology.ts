import type { Channel } from 'amqplib';
import type { Sql } from '../db/client';
import { isDatabaseUnavailable, isUndefinedTable } from '../db/postgres-errors';
import { RetryableError } from '../errors';
import { assertTopology, type Topology } from '../queue/topology';
import type { Logger } from '../telemetry/logger';
import { withReshardLock } from './reshard-lock';
import { declarableShardCount } from './shard-count';

/**
 * What an ingest or a worker declares each time it connects to the broker: the exchanges, the
 * retry tiers and the shard queues of the stored count (declarableShardCount), the count read
 * and the queues declared under the group's reshard lock, shared (withReshardLock): a reshard
 * runs wholly before or wholly after. While one runs, the connection fails, saying so, and is
 * tried again as after any failed setup, until it has finished.
 *
 * When Postgres cannot be reached, no shard queue is declared: the count cannot be read, and
 * with the configured one a process on an old count would bring back a queue a shrink removed.
 * A worker declares each shard queue as it takes the shard, and an ingest publishes nothing
 * before it has checked its count; a publish to a queue not there yet returns to its outbox.
 * Before migration 008 no reshard can have run, and every configured queue is declared.
 */
export async function declareShardTopology(sql: Sql, channel: Channel, topology: Topology, queuePrefix: string, log: Logger): Promise<void> {
  const declare = async (tx: Sql) => assertTopology(channel, topology, await declarableShardCount(tx, queuePrefix, topology.shards.length, log));
  const run = await withReshardLock(sql, queuePrefix, 'declare', declare).catch(async (error: unknown) => {
    if (isUndefinedTable(error)) {
      await assertTopology(channel, topology);
      return { taken: true } as const;
    }
    if (!isDatabaseUnavailable(error)) throw error;
    log.warn({ err: (error as Error).message },
      'could not read the stored shard count (Postgres is unavailable); declaring no shard queue: workers declare theirs as they take them');
    await assertTopology(channel, topology, 0);
    return { taken: true } as const;
  });
  if (!run.taken) {
    throw new RetryableError(
      `a wagate reshard of "${queuePrefix}" is running (it holds the group's reshard lock in Postgres): its shard queues are declared once it has finished`);
  }
  await recordRetryTiers(sql, queuePrefix, topology.retryTiers.map((tier) => tier.delayMs)).catch((error: Error) =>
    log.warn({ err: error.message }, 'could not record the retry tiers declared (a reshard re-addresses the recorded ones); recorded at the next connect'));
}

/**
 * The tiers this process declared, so that a reshard run after RETRY_DELAYS_MS changed still
 * re-addresses the retries waiting in the tiers no longer listed (migrations/041).
 */
async function recordRetryTiers(sql: Sql, queuePrefix: string, delaysMs: number[]): Promise<void> {
  if (delaysMs.length === 0) return;
  await sql`INSERT INTO retry_tier_delays (queue_prefix, delay_ms) SELECT ${queuePrefix}, unnest(${delaysMs}::integer[])
            ON CONFLICT (queue_prefix, delay_ms) DO NOTHING`;
}

/** The retry delays any process of the group has declared a tier for. */
export async function recordedRetryDelays(sql: Sql, queuePrefix: string): Promise<number[]> {
  const rows = await sql<{ delay_ms: number }[]>`SELECT delay_ms FROM retry_tier_delays WHERE queue_prefix = ${queuePrefix} ORDER BY delay_ms`;
  return rows.map((row) => row.delay_ms);
}
