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
const RECENT = 50_000;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: true });
});

afterAll(async () => {
  await db.drop();
});

async function rowsRead(table = 'outbound_messages'): Promise<{ read: number; updated: number; deleted: number }> {
  const [row] = await db.sql<{ read: number; updated: number; deleted: number }[]>`
    SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::integer AS read, n_tup_upd::integer AS updated, n_tup_del::integer AS deleted
    FROM pg_stat_user_tables WHERE relname = ${table}`;
  return row!;
}

/** Runs a cleanup on a pool of its own: its backend reports its reads when it ends. */
function cleanup() {
  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-cleanup' });
  return runCleanup(sql, loadConfig(testEnv(db.url)), { days: 9, personalDataDays: 7, orderDays: 365 }).finally(() => sql.end());
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

  const report = await cleanup();
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

it('reads the Twilio keys it keeps once per run while it deletes the older Meta keys behind them', async () => {
  // Twilio's keys stay for RETENTION_DAYS (30), Meta's go after --days (9): the Twilio rows
  // from 20 days ago are older than the Meta rows to delete, and are kept.
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, created_at)
    SELECT 'twilio', 'SMkept' || g, '15550900005', '15550900005', '100', 'processed', now() - interval '20 days' + g * interval '1 second'
    FROM generate_series(1, ${CLEARED_BEFORE}) g`;
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, created_at)
    SELECT 'whatsapp', 'wamid.due.' || g, '15550900006', '15550900006', '100', 'processed', now() - interval '15 days' + g * interval '1 second'
    FROM generate_series(1, ${TO_CLEAR}) g`;
  // A day's recent Meta messages, which no step of the run is due to touch: with them the
  // planner walks the created_at index, as on a shop's table, rather than scanning a small one.
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, created_at)
    SELECT 'whatsapp', 'wamid.recent.' || g, '15550900007', '15550900007', '100', 'processed', now() - interval '1 day' + g * interval '1 millisecond'
    FROM generate_series(1, ${RECENT}) g`;
  await db.sql`ANALYZE webhook_messages`;
  const before = await rowsRead('webhook_messages');

  const report = await cleanup();
  expect([report.webhook_messages_whatsapp, report.webhook_messages_twilio]).toEqual([TO_CLEAR, 0]);

  const after = await waitFor('the cleanup backend\'s statistics', async () => {
    const now = await rowsRead('webhook_messages');
    return now.deleted - before.deleted >= TO_CLEAR && now;
  });
  // About one read of the kept rows for the delete and one for the personal-data clearing, and
  // none of the recent ones. Each batch of the delete starting again from the oldest row, the
  // reads were near 300,000.
  expect(after.read - before.read).toBeLessThan(3 * (CLEARED_BEFORE + TO_CLEAR));
  expect(await db.sql`SELECT webhook_source, count(*)::integer AS n FROM webhook_messages GROUP BY 1 ORDER BY 1`).toEqual([
    { webhook_source: 'twilio', n: CLEARED_BEFORE },
    { webhook_source: 'whatsapp', n: RECENT },
  ]);
}, 60_000);

it('walks every due row in a session whose DateStyle writes zone abbreviations', async () => {
  await db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, body, created_at)
    SELECT 'styled-' || g, 'twilio', 'styled-' || g, '1', '2', 'order_confirmation', 'sent', 'Gracias Ana', now() - interval '8 days' - make_interval(secs => 2000 - g)
    FROM generate_series(1, 1200) g`;
  // 'SQL' style writes '12/01/2026 09:30:00.123456 IST'; read back, IST was taken for another
  // zone and the cursor jumped hours past the rows of the second batch.
  const url = new URL(db.url);
  url.searchParams.set('DateStyle', 'SQL, DMY');
  url.searchParams.set('TimeZone', 'Asia/Kolkata');
  const sql = createDatabase({ url: url.toString(), maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-cleanup-style' });
  try {
    expect(await sql`SELECT now()::text AS now`).toEqual([{ now: expect.stringMatching(/ IST$/) }]);
    await runCleanup(sql, loadConfig(testEnv(db.url)), { days: 9, personalDataDays: 7, orderDays: 365 });
  } finally {
    await sql.end();
  }
  expect(await db.sql`SELECT count(*)::integer AS n FROM outbound_messages WHERE idempotency_key LIKE 'styled-%' AND body IS NOT NULL`).toEqual([{ n: 0 }]);
});

it('clears personal data before anything else, and tells each step as it ends', async () => {
  await db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, body, created_at)
    VALUES ('steps-due', 'whatsapp', 'steps-due', '1', '2', 'order_confirmation', 'sent', 'Thanks Bea!', now() - interval '8 days')`;
  const steps: string[] = [];
  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-cleanup-steps' });
  try {
    const report = await runCleanup(sql, loadConfig(testEnv(db.url)), {
      days: 9, personalDataDays: 7, orderDays: 365,
      onStep: (what) => void steps.push(what),
    });
    expect(steps).toEqual(Object.keys(report));
    expect(report.personal_data_replies).toBeGreaterThanOrEqual(1);
  } finally {
    await sql.end();
  }
  // A run that its deadline stops after any step has cleared what PERSONAL_DATA_RETENTION_DAYS promised.
  expect(steps.slice(0, 4).sort()).toEqual(['personal_data_messages', 'personal_data_orders', 'personal_data_receipts', 'personal_data_replies']);
  expect(await db.sql`SELECT body FROM outbound_messages WHERE idempotency_key = 'steps-due'`).toEqual([{ body: null }]);
});

it('reads the rate-limit rows once a run, not once per batch of idle senders deleted', async () => {
  const ACTIVE = 30_000;
  const IDLE = 10_000;
  await db.sql`
    INSERT INTO webhook_rate_limits (webhook_source, phone_number, window_start, request_count, max_requests, window_seconds, last_request_at)
    SELECT 'whatsapp', 'active-' || g, now(), 1, 100, 3600, now() FROM generate_series(1, ${ACTIVE}) g
    UNION ALL
    SELECT 'whatsapp', 'idle-' || g, now() - interval '20 days', 1, 100, 3600, now() - interval '20 days' FROM generate_series(1, ${IDLE}) g`;
  await db.sql`ANALYZE webhook_rate_limits`;
  const before = await rowsRead('webhook_rate_limits');
  const report = await cleanup();
  expect(report.webhook_rate_limits).toBe(IDLE);
  const after = await waitFor('the cleanup backend\'s statistics', async () => {
    const now = await rowsRead('webhook_rate_limits');
    return now.deleted - before.deleted >= IDLE && now;
  });
  // About one pass over the table in key order, and the idle rows again for their deletes.
  // Each of the 10 batches starting again from the table's start read the active senders and
  // the rows deleted before (dead until vacuum) every time: over 700,000 reads.
  expect(after.read - before.read).toBeLessThan(3 * (ACTIVE + IDLE));
  expect(await db.sql`SELECT count(*)::integer AS n FROM webhook_rate_limits WHERE phone_number LIKE 'active-%'`).toEqual([{ n: ACTIVE }]);
}, 60_000);
