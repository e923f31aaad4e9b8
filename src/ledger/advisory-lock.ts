import type { Sql } from '../db/client';

/** Postgres's answers to a lock not had in time: lock_timeout, or the pool's statement_timeout first. */
const LOCK_NOT_HAD = ['55P03', '57014'];

/**
 * Takes the transaction-level advisory lock named `key` on `tx`, waiting at most waitMs: false
 * when another holder kept it that long. The lock goes with the transaction.
 */
export async function takeAdvisoryLockWithin(tx: Sql, key: string, waitMs: number): Promise<boolean> {
  await tx`SELECT set_config('lock_timeout', ${`${waitMs}ms`}, true),
                  set_config('statement_timeout', ${`${waitMs + 5000}ms`}, true)`;
  try {
    await tx`SELECT pg_advisory_xact_lock(hashtext(${key}))`;
    return true;
  } catch (error) {
    if (!LOCK_NOT_HAD.includes((error as { code?: string }).code ?? '')) throw error;
    return false;
  }
}
