import { isDatabaseUnavailable } from '../db/client';

const DEADLOCK_RETRIES = 3;

/**
 * Failures that say nothing about the batch itself: the database is away or slow, or lost a
 * race (40001 serialization, 40P01 deadlock after its retries). Every request gets its 503.
 */
export function isTransient(error: unknown): boolean {
  return isDatabaseUnavailable(error) || /^40/.test((error as { code?: string } | null)?.code ?? '');
}

/** SQLSTATE class 22: a value Postgres cannot store, such as U+0000 in text or jsonb (22P05, 22021). */
export function isDataException(error: unknown): boolean {
  return /^22/.test((error as { code?: string } | null)?.code ?? '');
}

export function ledgerTimeout(deadlineMs: number): Error {
  return Object.assign(new Error(`ledger commit exceeded ${deadlineMs} ms`), { code: 'LEDGER_TIMEOUT' });
}

/** The batch may still commit after the deadline; the provider's retry then finds a duplicate. */
export function withDeadline<T>(work: Promise<T>, deadlineMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(ledgerTimeout(deadlineMs)), deadlineMs);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

export async function runWithDeadlockRetry<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await run();
    } catch (error) {
      // 40P01: deadlock. Sorted locking should prevent it; if a foreign writer causes one, retry.
      if ((error as { code?: string }).code !== '40P01' || attempt >= DEADLOCK_RETRIES) throw error;
    }
  }
}
