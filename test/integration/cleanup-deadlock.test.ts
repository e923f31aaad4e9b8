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
  // The cleanup is the deadlock's victim: Postgres looks for a deadlock once, when a wait has
  // lasted deadlock_timeout, and the waiter that looks first, once the cycle has formed, gives
  // up. The cleanup waits first and looks after 10 s, ample for the other side to join the
  // cycle on a busy machine; the other side looks after two minutes.
  const cleaner = postgres(db.url, { max: 2, onnotice: () => undefined, connection: { application_name: 'wagate-test-cleaner', deadlock_timeout: '10s' } }) as unknown as Sql;
  const probe = postgres(db.url, { max: 1, onnotice: () => undefined }) as unknown as Sql;
  try {
    let secondTurn!: () => void;
    const turn = new Promise<void>((resolve) => (secondTurn = resolve));
    let firstLocked!: () => void;
    const locked = new Promise<void>((resolve) => (firstLocked = resolve));
    // The other writer locks the second sender's row, then the first's; the batch locks them in key order.
    const writing = side.begin(async (tx) => {
      await tx`SET LOCAL deadlock_timeout = '120s'`;
      await tx`SELECT 1 FROM webhook_rate_limits WHERE phone_number = ${senders[1]!} FOR UPDATE`;
      firstLocked();
      await turn;
      await tx`SELECT 1 FROM webhook_rate_limits WHERE phone_number = ${senders[0]!} FOR UPDATE`;
    });
    await locked;
    const cleaning = runCleanup(cleaner, loadConfig(testEnv(db.url)), { days: 30, personalDataDays: 7, orderDays: 365 });
    cleaning.catch(() => undefined);
    await waitFor('the batch to wait on the second row', async () => (await db.sql`
      SELECT 1 FROM pg_stat_activity WHERE application_name = 'wagate-test-cleaner' AND wait_event_type = 'Lock' AND query LIKE '%webhook_rate_limits%'`).length > 0);
    // It holds the first row meanwhile, so the other side's turn closes the cycle: a deadlock, not a wait.
    await expect(probe`SELECT 1 FROM webhook_rate_limits WHERE phone_number = ${senders[0]!} FOR UPDATE NOWAIT`).rejects.toMatchObject({ code: '55P03' });
    secondTurn();
    await writing;
    expect(await cleaning).toMatchObject({ webhook_rate_limits: 2 });
  } finally {
    await side.end({ timeout: 1 });
    await cleaner.end({ timeout: 1 });
    await probe.end({ timeout: 1 });
  }
  expect(await db.sql`SELECT phone_number FROM webhook_rate_limits`).toEqual([]);
}, 180_000);
