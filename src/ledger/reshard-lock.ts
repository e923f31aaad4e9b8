import { transaction, type Sql } from '../db/client';
import { takeAdvisoryLockWithin } from './advisory-lock';

type Locked<T> = { taken: true; value: T } | { taken: false };

/** How long a reshard waits for processes that are declaring their queues (each takes milliseconds). */
export const RESHARD_LOCK_WAIT_MS = 10_000;

const lockKey = (queuePrefix: string) => `wagate-reshard:${queuePrefix}`;

/**
 * The group's reshard lock, held by a reshard for its whole run ('reshard', exclusive) and by
 * each ingest and worker while it reads the shard count and declares its shard queues
 * ('declare', shared). So a process never declares with a count read before a reshard ran
 * after it had: a shrink's surplus queue, declared again once the move had deleted it, took an
 * old-count ingest's publishes, which then waited for a worker that never came, or were deleted
 * with it. A reshard waits up to RESHARD_LOCK_WAIT_MS for the declares under way; a process
 * does not wait for a reshard (answered `taken: false`, it connects again later).
 *
 * The lock is a transaction's, on a reserved connection (`work` gets it; a reshard runs its
 * statements on the pool, and its lock's timeouts bound only the wait for the lock): behind PgBouncer in
 * transaction mode an open transaction keeps its server connection, where a session lock would
 * stay on whichever connection took it. It goes with the transaction when the work ends, or
 * when its process dies.
 */
export async function withReshardLock<T>(sql: Sql, queuePrefix: string, mode: 'reshard' | 'declare', work: (tx: Sql) => Promise<T>): Promise<Locked<T>> {
  return transaction(sql, async (tx): Promise<Locked<T>> => {
    if (mode === 'declare') {
      const [row] = await tx<{ taken: boolean }[]>`SELECT pg_try_advisory_xact_lock_shared(hashtext(${lockKey(queuePrefix)})) AS taken`;
      return row!.taken ? { taken: true, value: await work(tx) } : { taken: false };
    }
    if (!(await takeAdvisoryLockWithin(tx, lockKey(queuePrefix), RESHARD_LOCK_WAIT_MS))) return { taken: false };
    return { taken: true, value: await work(tx) };
  }, 'rollback');
}
