import { loadConfig } from '../../src/config';
import { createDatabase } from '../../src/db/client';
import { runCleanup } from '../../src/ledger/retention';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';

/**
 * Dedupe keys are kept longer than the replay window, both counted in 24-hour days. Postgres
 * subtracts days from a timestamptz in calendar days of the session's time zone: in the week
 * after clocks go forward, 8 days back is 191 hours, and a key of 191.5 hours went an hour
 * early, while a replay of its message could still pass the window as new.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: true });
});

afterAll(async () => {
  await db.drop();
});

/** A POSIX time zone whose clocks went forward three days ago (Jn: day n of the year, February 29 never counted). */
function zoneWithSummerTimeFrom(daysAgo: number): string {
  const day = (date: Date) => {
    const start = Date.UTC(date.getUTCFullYear(), 0, 1);
    const ordinal = Math.floor((date.getTime() - start) / 86_400_000) + 1;
    const leap = new Date(Date.UTC(date.getUTCFullYear(), 1, 29)).getUTCMonth() === 1;
    return Math.min(leap && ordinal > 59 ? ordinal - 1 : ordinal, 365);
  };
  const now = new Date();
  return `AAA0BBB,J${day(new Date(now.getTime() - daysAgo * 86_400_000))}/0,J${day(new Date(now.getTime() + 60 * 86_400_000))}/0`;
}

it('keeps a Meta key 191.5 hours old with 8 days of retention in the week after clocks went forward', async () => {
  const [database] = await db.sql<{ name: string }[]>`SELECT current_database() AS name`;
  await db.sql.unsafe(`ALTER DATABASE "${database!.name}" SET timezone TO '${zoneWithSummerTimeFrom(3)}'`);
  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-cleanup' });
  try {
    // The zone does what the test needs: 8 calendar days back are 191 hours.
    const [span] = await sql<{ hours: number }[]>`SELECT extract(epoch FROM now() - (now() - interval '8 days'))::float8 / 3600 AS hours`;
    expect(span!.hours).toBe(191);
    await sql`
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status, payload, created_at) VALUES
        ('whatsapp', 'wamid.kept', '1', 'processed', '{"x":1}', now() - interval '191 hours 30 minutes'),
        ('whatsapp', 'wamid.gone', '1', 'processed', '{"x":1}', now() - interval '192 hours 30 minutes')`;
    const report = await runCleanup(sql, loadConfig(testEnv(db.url)), { days: 8, personalDataDays: 7, orderDays: 365 });
    expect(report.webhook_messages_whatsapp).toBe(1);
    expect(await sql`SELECT message_id FROM webhook_messages`).toEqual([{ message_id: 'wamid.kept' }]);
  } finally {
    await sql.end();
  }
});
