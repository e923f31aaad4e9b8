import type { Sql } from '../db/client';

export type Locked<T> = { taken: true; value: T } | { taken: false };

/**
 * Runs `work` holding the group's reshard lock, or answers `taken: false` at once when another
 * holds it. One reshard runs at a time per group, and a process that removes the surplus shard
 * queues it declared again never does so beside a reshard. The lock is a transaction's, held
 * open for the work: behind PgBouncer in transaction mode an open transaction keeps its server
 * connection, where a session lock would stay on whichever connection took it. It goes with
 * the transaction when the work ends, or when its process dies.
 */
export async function withReshardLock<T>(sql: Sql, queuePrefix: string, work: () => Promise<T>): Promise<Locked<T>> {
  const lock = await sql.reserve();
  try {
    await lock`BEGIN`;
    const [row] = await lock<{ taken: boolean }[]>`SELECT pg_try_advisory_xact_lock(hashtext(${`wagate-reshard:${queuePrefix}`})) AS taken`;
    if (!row!.taken) return { taken: false };
    return { taken: true, value: await work() };
  } finally {
    await lock`ROLLBACK`.catch(() => undefined);
    lock.release();
  }
}
