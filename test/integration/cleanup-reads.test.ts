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

/** Rows cleared on earlier days and rows due today, of a table whose personal data is cleared. */
const CLEARED_TABLES = [
  {
    table: 'outbound_messages', step: 'personal_data_replies',
    insert: (what: string, rows: number, body: string | null, age: string) => db.sql`
      INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, body, created_at)
      SELECT ${what} || g, 'whatsapp', ${what} || g, '1', '2', 'order_confirmation', 'sent', ${body}, now() - ${age}::interval + g * interval '1 second'
      FROM generate_series(1, ${rows}) g`,
  },
  {
    table: 'orders', step: 'personal_data_orders',
    insert: (what: string, rows: number, name: string | null, age: string) => db.sql`
      INSERT INTO orders (webhook_source, message_id, phone_number, sender_key, customer_name, status, total, currency, created_at)
      SELECT 'whatsapp', ${what} || g, '1', '1', ${name}, 'fulfilled', 12.5, 'EUR', now() - ${age}::interval + g * interval '1 second'
      FROM generate_series(1, ${rows}) g`,
  },
] as const;

it.each(CLEARED_TABLES)('reads the $table due for clearing, not those cleared on earlier days', async ({ table, step, insert }) => {
  // ORDER_RETENTION_DAYS keeps a year of cleared rows behind the one day's due: walked from
  // the oldest through the created_at index, every night read them all.
  await insert('cleared-', CLEARED_BEFORE, null, '100 days');
  await insert('due-', TO_CLEAR, 'Ana', '50 days');
  await db.sql`ANALYZE ${db.sql(table)}`;
  const before = await rowsRead(table);

  const report = await cleanup();
  expect(report[step]).toBe(TO_CLEAR);

  const after = await waitFor('the cleanup backend\'s statistics', async () => {
    const now = await rowsRead(table);
    return now.updated - before.updated >= TO_CLEAR && now;
  });
  // The 2,500 due rows read a few times over (picked, then updated: about 6,500 here), and
  // none of the 20,000 cleared before. Through the created_at index it was over 45,000.
  expect(after.read - before.read).toBeLessThan(CLEARED_BEFORE / 2);
  // Read after the count: this scan is the test's own.
  expect(await db.sql`SELECT id FROM ${db.sql(table)} WHERE created_at < now() - interval '7 days' AND ${
    table === 'orders' ? db.sql`customer_name IS NOT NULL` : db.sql`body IS NOT NULL`}`).toEqual([]);
}, 60_000);

it('repairs the replies of recent receipts by looking each one up, not by reading every reply kept', async () => {
  const LEFT_BEHIND = 1_500;
  // Replies long settled, whose receipts are long gone, and a day's replies whose receipts
  // were stored but not folded in (a process died between its commit and its fold).
  await db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, provider_message_id, delivery_status, created_at)
    SELECT 'settled-' || g, 'whatsapp', 'settled-' || g, '1', '2', 'order_confirmation', 'sent', 'wamid.settled.' || g, 'read', now() - interval '200 days' + g * interval '1 second'
    FROM generate_series(1, ${CLEARED_BEFORE}) g
    UNION ALL
    SELECT 'behind-' || g, 'whatsapp', 'behind-' || g, '1', '2', 'order_confirmation', 'sent', 'wamid.behind.' || g, 'sent', now() - interval '1 day' + g * interval '1 second'
    FROM generate_series(1, ${LEFT_BEHIND}) g`;
  await db.sql`
    INSERT INTO message_statuses (webhook_source, message_id, status, created_at)
    SELECT 'whatsapp', 'wamid.behind.' || g, 'delivered', now() - interval '1 day' + g * interval '1 second'
    FROM generate_series(1, ${LEFT_BEHIND}) g`;
  await db.sql`ANALYZE outbound_messages`;
  await db.sql`ANALYZE message_statuses`;
  const before = await rowsRead();

  const report = await cleanup();
  expect(report.receipts_folded).toBe(LEFT_BEHIND);

  const after = await waitFor('the cleanup backend\'s statistics', async () => {
    const now = await rowsRead();
    return now.updated - before.updated >= LEFT_BEHIND && now;
  });
  // Each reply behind read a few times (looked up, locked, updated). Joined to the receipts,
  // the 20,000 settled replies were read as well.
  expect(after.read - before.read).toBeLessThan(CLEARED_BEFORE / 2);
  expect(await db.sql`SELECT delivery_status, count(*)::integer AS n FROM outbound_messages WHERE idempotency_key LIKE 'behind-%' GROUP BY 1`)
    .toEqual([{ delivery_status: 'delivered', n: LEFT_BEHIND }]);
}, 60_000);

it('repairs every reply behind when the receipts of one moment cross a power of ten in their ids', async () => {
  // One ingest batch's receipts share their created_at; sorted as text, '100000' came before
  // '99500', and the cursor, compared as a number, skipped every receipt below it.
  const BEHIND = 1_500;
  await db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, provider_message_id, delivery_status, created_at)
    SELECT 'tens-' || g, 'whatsapp', 'tens-' || g, '1', '2', 'order_confirmation', 'sent', 'wamid.tens.' || g, 'sent', now() - interval '1 day'
    FROM generate_series(1, ${BEHIND}) g`;
  await db.sql`
    INSERT INTO message_statuses (id, webhook_source, message_id, status, created_at) OVERRIDING SYSTEM VALUE
    SELECT 99499 + g, 'whatsapp', 'wamid.tens.' || g, 'delivered', now() - interval '1 hour'
    FROM generate_series(1, ${BEHIND}) g`;
  const report = await cleanup();
  expect(report.receipts_folded).toBe(BEHIND);
  expect(await db.sql`SELECT count(*)::integer AS n FROM outbound_messages WHERE idempotency_key LIKE 'tens-%' AND delivery_status = 'delivered'`).toEqual([{ n: BEHIND }]);
});

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
