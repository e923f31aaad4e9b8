import { transaction, type Sql } from '../db/client';
import { WagateError } from '../errors';
import { takeAdvisoryLockWithin } from './advisory-lock';

/** How long a command reading the dead-letter queue waits for another reader to end. */
export const DEAD_LETTER_LOCK_WAIT_MS = 60_000;

/**
 * Runs `work` as the only reader of a group's dead-letter queue (dlq list, replay and purge,
 * erase, a worker's drop of an erased customer's letter). Each reads with basic.get and holds
 * what it took, unacked, until its pass ends, and a letter held by one is invisible to the
 * others: an erase beside a `dlq list` found none of its customer's letters and said it had
 * dropped 0. The lock is a transaction's, on a reserved connection, as the reshard's is; it
 * goes with the transaction when the work ends or its process dies.
 */
export function withDeadLetterLock<T>(sql: Sql, queuePrefix: string, work: () => Promise<T>, waitMs = DEAD_LETTER_LOCK_WAIT_MS): Promise<T> {
  return transaction(sql, async (tx) => {
    if (!(await takeAdvisoryLockWithin(tx, `wagate-dlq:${queuePrefix}`, waitMs))) {
      throw new WagateError('OPERATION_REFUSED',
        `another command has been reading the dead-letter queue of "${queuePrefix}" for over ${waitMs / 1000} s (dlq list, dlq replay or erase hold the letters they read until they end): run this again once it has ended`);
    }
    return work();
  }, 'rollback');
}
