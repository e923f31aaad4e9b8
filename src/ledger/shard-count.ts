import type { Sql } from '../db/client';
import { isDatabaseUnavailable, isUndefinedTable } from '../db/postgres-errors';
import { WagateError } from '../errors';
import type { Logger } from '../telemetry/logger';

/** WORK_SHARDS disagrees with the count the system's queues were built with: a configuration to correct. */
export function shardCountMismatch(configured: number, stored: number, queuePrefix: string): WagateError {
  return new WagateError(
    'CONFIG_INVALID',
    `WORK_SHARDS is ${configured}, but the work queues of "${queuePrefix}" are sharded ${stored} ways (stored in Postgres). ` +
      `Set WORK_SHARDS=${stored} on every ingest and worker, or change the count with "wagate reshard --to ${configured}" ` +
      `and then deploy WORK_SHARDS=${configured}.`,
  );
}

/**
 * Records the shard count on first use and checks it afterwards. Ingest and worker must
 * agree on it: a sender's shard is its hash modulo the count, and two counts would put one
 * sender on two shards, processed by two workers at once. The owner rows are created here
 * too, one per shard, so that claiming a shard is a single conditional update.
 */
export async function ensureShardCount(sql: Sql, queuePrefix: string, shardCount: number): Promise<void> {
  await sql`INSERT INTO work_shard_settings (queue_prefix, shard_count) VALUES (${queuePrefix}, ${shardCount})
            ON CONFLICT (queue_prefix) DO NOTHING`;
  const stored = await storedShardCount(sql, queuePrefix);
  if (stored !== shardCount) throw shardCountMismatch(shardCount, stored ?? shardCount, queuePrefix);
  await sql`INSERT INTO work_shard_owners (queue_prefix, shard)
            SELECT ${queuePrefix}, shard FROM generate_series(0, ${shardCount - 1}::integer) AS shard
            ON CONFLICT (queue_prefix, shard) DO NOTHING`;
}

export async function storedShardCount(sql: Sql, queuePrefix: string): Promise<number | null> {
  const [row] = await sql<{ shard_count: number }[]>`SELECT shard_count FROM work_shard_settings WHERE queue_prefix = ${queuePrefix}`;
  return row?.shard_count ?? null;
}

/**
 * The start-up check of ingest and worker: a mismatch stops the process. A database that
 * cannot be reached yet does not: the ingest answers 503 until it can, and a worker holds no
 * shard whose count it has not seen. True once the count is checked (or cannot be, before
 * migration 008); false while Postgres is unavailable, for the ingest to check again before it
 * publishes (checkShardCountUntilDone).
 */
export async function checkShardCountAtStart(sql: Sql, queuePrefix: string, shardCount: number, log: Logger): Promise<boolean> {
  const result = await tryShardCount(sql, queuePrefix, shardCount);
  // A rolling upgrade: this process may start before the migration hook has finished.
  if (result.kind === 'not_migrated') log.warn('the shard count is not stored yet (migration 008 not applied); checked at the next start');
  if (result.kind === 'unavailable') {
    log.warn({ err: result.error.message }, 'could not check WORK_SHARDS against the stored shard count; Postgres is unavailable; nothing is published until it is checked');
    return false;
  }
  return true;
}

type ShardCountCheck = { kind: 'checked' } | { kind: 'not_migrated' } | { kind: 'unavailable'; error: Error };

/** The check once; a mismatch throws. */
async function tryShardCount(sql: Sql, queuePrefix: string, shardCount: number): Promise<ShardCountCheck> {
  try {
    await ensureShardCount(sql, queuePrefix, shardCount);
    return { kind: 'checked' };
  } catch (error) {
    if (isUndefinedTable(error)) return { kind: 'not_migrated' };
    if (!isDatabaseUnavailable(error)) throw error;
    return { kind: 'unavailable', error: error as Error };
  }
}

/** How often an ingest that could not check its shard count at start tries again. */
const SHARD_COUNT_RECHECK_MS = 2_000;

/**
 * Checks the shard count again until Postgres answers: an ingest whose WORK_SHARDS differs from
 * the stored count would publish a sender's messages to a shard queue no worker reads (or
 * split a sender over two shards), so it publishes nothing until the check passes. Resolves
 * true once it has, false when stopped first; rejects with the mismatch.
 */
export async function checkShardCountUntilDone(sql: Sql, queuePrefix: string, shardCount: number, log: Logger, stop: AbortSignal): Promise<boolean> {
  while (!stop.aborted) {
    await new Promise((resolve) => setTimeout(resolve, SHARD_COUNT_RECHECK_MS).unref());
    if (stop.aborted) return false;
    // Said once at start; an outage that goes on is not said again every 2 s.
    if ((await tryShardCount(sql, queuePrefix, shardCount)).kind !== 'unavailable') {
      log.info('WORK_SHARDS matches the stored shard count; publishing');
      return true;
    }
  }
  return false;
}

/**
 * How many of its shard queues a process with `configured` shards declares when it connects
 * to the broker. After a shrinking reshard (or once one has gathered the old shards), the
 * surplus queues are gone, and a process still on the old count must not bring them back:
 * its publishes would wait there for a worker that never comes, instead of returning to the
 * outbox as unroutable until it runs with the new count. Every configured queue while nothing
 * is stored yet. An error is the caller's (declareShardTopology).
 */
export async function declarableShardCount(sql: Sql, queuePrefix: string, configured: number, log: Logger): Promise<number> {
  const [row] = await sql<{ shard_count: number; gathered_for: number | null }[]>`
    SELECT shard_count, gathered_for FROM work_shard_settings WHERE queue_prefix = ${queuePrefix}`;
  if (!row) return configured;
  const declarable = Math.min(configured, row.shard_count, row.gathered_for ?? configured);
  if (declarable < configured) {
    log.warn({ configured, declared: declarable }, 'declaring only the shard queues of the stored count: WORK_SHARDS is above it (a reshard made it smaller)');
  }
  return declarable;
}
