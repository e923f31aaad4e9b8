import { classifyPostgresError, isValueRefused } from '../db/postgres-errors';
import { isWagateError, WagateError } from '../errors';
import { failAfter } from '../settle-within';

const DEADLOCK_RETRIES = 3;

/**
 * Failures that say nothing about the batch itself: the database is away, slow or cancelled
 * a statement, the commit outlived its deadline, or two transactions deadlocked (after their
 * retries). Every request of the batch gets its 503.
 */
export function isTransient(error: unknown): boolean {
  return classifyPostgresError(error) !== null || isWagateError(error, 'LEDGER_TIMEOUT');
}

/** A value Postgres cannot store, such as U+0000 in text or jsonb: that item, not the batch, is at fault. */
export function isDataException(error: unknown): boolean {
  return isValueRefused(error);
}

/**
 * A request's deadline passed. Where it waited tells the operator what to look at: for a free
 * batch slot (every slot busy with Postgres: too little pool for the load), or for Postgres
 * itself (slow commits, locks, the network).
 */
export function ledgerTimeout(deadlineMs: number, waitedFor: 'a batch slot' | 'Postgres' = 'Postgres'): WagateError {
  const hint =
    waitedFor === 'a batch slot'
      ? 'every ledger batch slot stayed busy: raise DB_POOL_MAX or add ingest pods, and check Postgres commit times'
      : 'Postgres did not answer in time: check its commit times, lock waits and the network to it';
  return new WagateError('LEDGER_TIMEOUT', `ledger write exceeded ${deadlineMs} ms waiting for ${waitedFor}; ${hint}`);
}

/** The batch may still commit after the deadline; the provider's retry then finds a duplicate. */
export function withDeadline<T>(work: Promise<T>, deadlineMs: number): Promise<T> {
  return failAfter(work, deadlineMs, () => ledgerTimeout(deadlineMs));
}

export async function runWithDeadlockRetry<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await run();
    } catch (error) {
      // Sorted locking should prevent a deadlock; if a foreign writer causes one, retry.
      if (classifyPostgresError(error) !== 'DATABASE_DEADLOCK' || attempt >= DEADLOCK_RETRIES) throw error;
    }
  }
}
