import type { Sql } from '../db/client';

/** Postgres's answers to a lock not had in time: lock_timeout, or the pool's statement_timeout first. */
const LOCK_NOT_HAD = ['55P03', '57014'];

/**
 * Takes the transaction-level advisory lock named `key` on `tx`, waiting at most waitMs: false
 * when another holder kept it that long. The lock goes with the transaction, which stays idle
 * while its holder works (a reshard's move, a pass over the dead-letter queue): a server's
 * idle_in_transaction_session_timeout would end it, and the lock with it, mid-work, so it is
 * turned off for this transaction.
 */
export async function takeAdvisoryLockWithin(tx: Sql, key: string, waitMs: number): Promise<boolean> {
  await tx`SELECT set_config('lock_timeout', ${`${waitMs}ms`}, true),
                  set_config('statement_timeout', ${`${waitMs + 5000}ms`}, true),
                  set_config('idle_in_transaction_session_timeout', '0', true)`;
  try {
    await tx`SELECT pg_advisory_xact_lock(hashtext(${key}))`;
    return true;
  } catch (error) {
    if (!LOCK_NOT_HAD.includes((error as { code?: string }).code ?? '')) throw error;
    return false;
  }
}
