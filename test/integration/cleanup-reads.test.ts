import { loadConfig } from '../../src/config';
import { createDatabase } from '../../src/db/client';
import { runCleanup } from '../../src/ledger/retention';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { waitFor } from '../support/wait';

/**
 * Personal data is cleared in batches. Cleared rows stay until the ledger's retention, so a
 * batch that starts again from the oldest row reads all of them: a day's clearing then read
 * the months before it once per batch of 1,000. The rows a run reads must grow with the table,
 * not with the table times the batches.
 */
const CLEARED_BEFORE = 20_000;
const TO_CLEAR = 2_500;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: true });
});

afterAll(async () => {
  await db.drop();
});

async function rowsRead(): Promise<{ read: number; updated: number }> {
  const [row] = await db.sql<{ read: number; updated: number }[]>`
    SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::integer AS read, n_tup_upd::integer AS updated
    FROM pg_stat_user_tables WHERE relname = 'outbound_messages'`;
  return row!;
}

it('reads the replies it cleared on earlier days once per run, not once per batch', async () => {
  await db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, body, created_at)
    SELECT 'cleared-' || g, 'whatsapp', 'cleared-' || g, '1', '2', 'order_confirmation', 'sent', NULL, now() - interval '100 days' + g * interval '1 second'
    FROM generate_series(1, ${CLEARED_BEFORE}) g`;
  await db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, body, created_at)
    SELECT 'due-' || g, 'whatsapp', 'due-' || g, '1', '2', 'order_confirmation', 'sent', 'Thanks Ana!', now() - interval '50 days' + g * interval '1 second'
    FROM generate_series(1, ${TO_CLEAR}) g`;
  await db.sql`ANALYZE outbound_messages`;
  const before = await rowsRead();

  // A pool of its own: its backends report their reads when they end.
  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-cleanup' });
  const report = await runCleanup(sql, loadConfig(testEnv(db.url)), { days: 9, personalDataDays: 7, orderDays: 365 }).finally(() => sql.end());
  expect(report.personal_data_replies).toBe(TO_CLEAR);

  const after = await waitFor('the cleanup backend\'s statistics', async () => {
    const now = await rowsRead();
    return now.updated - before.updated >= TO_CLEAR && now;
  });
  // About one read of the table for the clearing and one for the receipt repair's join. Read
  // again for each of the three batches, the clearing alone would be over 60,000.
  expect(after.read - before.read).toBeLessThan(3 * (CLEARED_BEFORE + TO_CLEAR));
  // Read after the count: this scan is the test's own.
  expect(await db.sql`SELECT 1 FROM outbound_messages WHERE body IS NOT NULL`).toHaveLength(0);
}, 60_000);
