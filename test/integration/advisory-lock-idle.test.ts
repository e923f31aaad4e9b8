import postgres from 'postgres';
import type { Sql } from '../../src/db/client';
import { WagateError } from '../../src/errors';
import { withDeadLetterLock } from '../../src/ledger/dead-letter-lock';
import { withReshardLock } from '../../src/ledger/reshard-lock';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { waitFor } from '../support/wait';

/**
 * The reshard's and the dead-letter queue's locks are held by a transaction that stays idle
 * while its holder works. On a server whose idle_in_transaction_session_timeout is shorter
 * than that work, the session was ended and the lock went with it: an erase beside a long
 * `dlq replay` then took the lock and missed the letters the replay held.
 */
const IDLE_TIMEOUT_MS = 500;
let db: TestDatabase;
let strict: Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  strict = postgres(db.url, {
    max: 2,
    onnotice: () => undefined,
    connection: { application_name: 'lock-holder', idle_in_transaction_session_timeout: String(IDLE_TIMEOUT_MS) as unknown as number },
  }) as Sql;
});

afterAll(async () => {
  await strict.end({ timeout: 1 });
  await db.drop();
});

/** Until the holder's transaction has sat idle for three timeouts, by the server's clock, or its session is gone. */
async function idleThreeTimeoutsOrGone(): Promise<'idle' | 'gone'> {
  return waitFor('the holder idle three timeouts long, or ended', async () => {
    const [holder] = await db.sql<{ idleMs: number }[]>`
      SELECT (extract(epoch FROM now() - state_change) * 1000)::float8 AS "idleMs" FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'lock-holder' AND state = 'idle in transaction'`;
    if (!holder) {
      const [any] = await db.sql`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lock-holder' AND state = 'active'`;
      return any ? undefined : 'gone' as const;
    }
    return holder.idleMs > 3 * IDLE_TIMEOUT_MS ? 'idle' as const : undefined;
  });
}

it('keeps the dead-letter lock through work longer than the server\'s idle-in-transaction timeout', async () => {
  let finish!: () => void;
  let started!: () => void;
  const working = new Promise<void>((resolve) => (started = resolve));
  const holding = withDeadLetterLock(strict, 'idle-test', () => {
    started();
    return new Promise<void>((resolve) => (finish = resolve));
  });
  await working;
  try {
    expect(await idleThreeTimeoutsOrGone()).toBe('idle');
    await expect(withDeadLetterLock(db.sql, 'idle-test', async () => 'taken', 200)).rejects.toThrow(WagateError);
  } finally {
    finish();
    await holding.catch(() => undefined);
  }
  expect(await withDeadLetterLock(db.sql, 'idle-test', async () => 'taken', 200)).toBe('taken');
});

it('keeps the reshard lock through a move longer than the server\'s idle-in-transaction timeout', async () => {
  let finish!: () => void;
  let started!: () => void;
  const working = new Promise<void>((resolve) => (started = resolve));
  const holding = withReshardLock(strict, 'idle-test', 'reshard', () => {
    started();
    return new Promise<void>((resolve) => (finish = resolve));
  });
  await working;
  try {
    expect(await idleThreeTimeoutsOrGone()).toBe('idle');
    expect(await withReshardLock(db.sql, 'idle-test', 'declare', async () => 'declared')).toEqual({ taken: false });
  } finally {
    finish();
    await holding.catch(() => undefined);
  }
});
