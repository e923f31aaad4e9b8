import postgres from 'postgres';
import { loadConfig } from '../../src/config';
import type { Sql } from '../../src/db/client';
import { runCleanup } from '../../src/ledger/retention';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { waitFor } from '../support/wait';

/**
 * A cleanup batch that deadlocks with another writer of the same rows (an erase, a worker
 * locking them in another order) is tried again, where the night's run used to fail on it.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

it('tries a batch again after a deadlock, and deletes every idle row', async () => {
  const senders = ['15550900001', '15550900002'];
  for (const phone of senders) {
    await db.sql`INSERT INTO webhook_rate_limits (webhook_source, phone_number, request_count, window_start, max_requests, window_seconds, last_request_at)
                 VALUES ('whatsapp', ${phone}, 1, now() - interval '40 days', 20, 60, now() - interval '40 days')`;
  }
  const side = postgres(db.url, { max: 1, onnotice: () => undefined }) as unknown as Sql;
  // The cleanup is the deadlock's victim, whatever the machine's pace: Postgres looks for a
  // deadlock once a wait has lasted deadlock_timeout, and the waiter that looks first, once the
  // cycle has formed, gives up. The cleanup's looks after 3 s, the other side's after a minute.
  const cleaner = postgres(db.url, { max: 2, onnotice: () => undefined, connection: { application_name: 'wagate-test-cleaner', deadlock_timeout: '3s' } }) as unknown as Sql;
  try {
    let secondTurn!: () => void;
    const turn = new Promise<void>((resolve) => (secondTurn = resolve));
    let firstLocked!: () => void;
    const locked = new Promise<void>((resolve) => (firstLocked = resolve));
    // The other writer locks the second sender's row, then the first's; the batch locks them in key order.
    const writing = side.begin(async (tx) => {
      await tx`SET LOCAL deadlock_timeout = '60s'`;
      await tx`SELECT 1 FROM webhook_rate_limits WHERE phone_number = ${senders[1]!} FOR UPDATE`;
      firstLocked();
      await turn;
      await tx`SELECT 1 FROM webhook_rate_limits WHERE phone_number = ${senders[0]!} FOR UPDATE`;
    });
    await locked;
    const cleaning = runCleanup(cleaner, loadConfig(testEnv(db.url)), { days: 30, personalDataDays: 7, orderDays: 365 });
    cleaning.catch(() => undefined);
    await waitFor('the batch to hold the first row and wait on the second', async () => (await db.sql`
      SELECT 1 FROM pg_stat_activity WHERE application_name = 'wagate-test-cleaner' AND wait_event_type = 'Lock' AND query LIKE '%webhook_rate_limits%'`).length > 0);
    secondTurn();
    await writing;
    expect(await cleaning).toMatchObject({ webhook_rate_limits: 2 });
  } finally {
    await side.end({ timeout: 1 });
    await cleaner.end({ timeout: 1 });
  }
  expect(await db.sql`SELECT phone_number FROM webhook_rate_limits`).toEqual([]);
}, 60_000);
