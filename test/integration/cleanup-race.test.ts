import { loadConfig } from '../../src/config';
import { createDatabase } from '../../src/db/client';
import { runCleanup } from '../../src/ledger/retention';
import { createTestDatabase, holdInTransaction, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { waitFor } from '../support/wait';

/**
 * `release` and `dlq replay` put old finished messages back on their way (queued, with an
 * outbox row). A cleanup batch that chose such a row before that committed must leave it:
 * deleted, or its payload cleared, the message would be lost after `release` said it was released.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: true });
});

afterAll(async () => {
  await db.drop();
});

/** Runs a cleanup on a connection of its own, lets `held` go once the cleanup waits on its row, and returns the report. */
async function cleanupPast(held: { release(): Promise<void> }) {
  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-cleanup-race' });
  try {
    const cleanup = runCleanup(sql, loadConfig(testEnv(db.url)), { days: 9, personalDataDays: 7, orderDays: 365 });
    await waitFor('the cleanup to wait on the held row', async () =>
      (await db.sql`SELECT 1 FROM pg_stat_activity WHERE application_name = 'wagate-test-cleanup-race' AND wait_event_type = 'Lock'`).length > 0);
    await held.release();
    return await cleanup;
  } finally {
    await sql.end();
  }
}

it('keeps an old message that release puts back on the queue while a cleanup batch waits on it', async () => {
  const [row] = await db.sql<{ id: string }[]>`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload, created_at)
    VALUES ('whatsapp', 'wamid.cleanup-race', '15550900001', '15550900001', '100', 'rate_limited', '{"from":"15550900001"}', now() - interval '60 days')
    RETURNING id::text`;
  // As release does: the status and the outbox row in one transaction, held open here.
  const release = holdInTransaction(db.sql, async (tx) => {
    await tx`UPDATE webhook_messages SET status = 'queued', updated_at = now() WHERE id = ${row!.id}`;
    await tx`INSERT INTO outbox (webhook_message_id, lease_until) VALUES (${row!.id}, now())`;
  });
  await release.held;

  const report = await cleanupPast(release);
  expect(report.webhook_messages_whatsapp).toBe(0);
  expect(await db.sql`SELECT status, payload IS NOT NULL AS kept FROM webhook_messages WHERE id = ${row!.id}`).toEqual([{ status: 'queued', kept: true }]);
});

it('keeps a sender\'s rate-limit row and language that were renewed while a cleanup batch waited on them', async () => {
  await db.sql`
    INSERT INTO webhook_rate_limits (webhook_source, phone_number, request_count, window_start, max_requests, window_seconds, last_request_at, is_blocked)
    VALUES ('whatsapp', '15550900002', 100, now() - interval '60 days', 100, 3600, now() - interval '60 days', false)`;
  await db.sql`INSERT INTO customer_languages (webhook_source, sender_key, language, updated_at) VALUES ('whatsapp', '15550900002', 'es', now() - interval '60 days')`;
  // The sender writes again (the ingest's upsert, then the worker's language), each in a
  // transaction held open here until the cleanup's delete waits on its row.
  const limit = holdInTransaction(db.sql, (tx) =>
    tx`UPDATE webhook_rate_limits SET request_count = 1, window_start = now(), last_request_at = now(), is_blocked = true WHERE phone_number = '15550900002'`);
  const language = holdInTransaction(db.sql, (tx) => tx`UPDATE customer_languages SET language = 'pt', updated_at = now() WHERE sender_key = '15550900002'`);
  await Promise.all([limit.held, language.held]);
  const waitingOn = (table: string) => async () => (await db.sql`
    SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'wagate-test-cleanup-race' AND wait_event_type = 'Lock' AND query LIKE ${`%DELETE FROM "${table}" %`}`).length > 0;

  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-cleanup-race' });
  try {
    const cleanup = runCleanup(sql, loadConfig(testEnv(db.url)), { days: 9, personalDataDays: 7, orderDays: 365 });
    await waitFor('the cleanup to wait on the renewed rate-limit row', waitingOn('webhook_rate_limits'));
    await limit.release();
    await waitFor('the cleanup to wait on the renewed language', waitingOn('customer_languages'));
    await language.release();
    const report = await cleanup;
    expect([report.webhook_rate_limits, report.customer_languages]).toEqual([0, 0]);
    expect(await db.sql`SELECT is_blocked FROM webhook_rate_limits WHERE phone_number = '15550900002'`).toEqual([{ is_blocked: true }]);
    expect(await db.sql`SELECT language FROM customer_languages WHERE sender_key = '15550900002'`).toEqual([{ language: 'pt' }]);
  } finally {
    await sql.end();
  }
});

it('clears the rest of the due personal data when one row of a batch changed while the batch waited on it', async () => {
  // More than a batch (1,000 rows) of finished messages past the personal-data retention, not
  // yet past the ledger's; the oldest is put back on its way by a release held open here.
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload, created_at)
    SELECT 'whatsapp', 'wamid.cleanup-batch.' || g, '15550900003', '15550900003', '100', 'processed', '{"from":"15550900003"}',
           now() - interval '8 days' - make_interval(secs => 2000 - g)
    FROM generate_series(1, 1200) AS g`;
  const release = holdInTransaction(db.sql, (tx) =>
    tx`UPDATE webhook_messages SET status = 'queued', updated_at = now() WHERE message_id = 'wamid.cleanup-batch.1'`);
  await release.held;

  const report = await cleanupPast(release);
  expect(report.personal_data_messages).toBe(1199);
  expect(await db.sql`
    SELECT status, count(*)::integer AS n, count(payload)::integer AS kept FROM webhook_messages
    WHERE message_id LIKE 'wamid.cleanup-batch.%' GROUP BY status ORDER BY status`).toEqual([
    { status: 'processed', n: 1199, kept: 0 },
    { status: 'queued', n: 1, kept: 1 },
  ]);
});

it('deletes the rest of the old messages when one row of a batch was put back on its way while the batch waited on it', async () => {
  // More than a batch (1,000 rows) of finished messages past the ledger's retention; the
  // oldest is put back on its way by a release held open here.
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload, created_at)
    SELECT 'whatsapp', 'wamid.cleanup-delete.' || g, '15550900004', '15550900004', '100', 'processed', '{"from":"15550900004"}',
           now() - interval '60 days' - make_interval(secs => 2000 - g)
    FROM generate_series(1, 1200) AS g`;
  const release = holdInTransaction(db.sql, (tx) =>
    tx`UPDATE webhook_messages SET status = 'queued', updated_at = now() WHERE message_id = 'wamid.cleanup-delete.1'`);
  await release.held;

  const report = await cleanupPast(release);
  expect(report.webhook_messages_whatsapp).toBe(1199);
  expect(await db.sql`SELECT message_id, status FROM webhook_messages WHERE message_id LIKE 'wamid.cleanup-delete.%'`)
    .toEqual([{ message_id: 'wamid.cleanup-delete.1', status: 'queued' }]);
});

it('deletes the rest of the old rate-limit rows and languages when one of a batch was renewed while the batch waited on it', async () => {
  // More than a batch of each, all past the retention; the first written (the first a batch
  // picks) is renewed by its sender, in transactions held open here.
  await db.sql`
    INSERT INTO webhook_rate_limits (webhook_source, phone_number, request_count, window_start, max_requests, window_seconds, last_request_at, is_blocked)
    SELECT 'twilio', 'whatsapp:+1555091' || lpad(g::text, 4, '0'), 1, now() - interval '60 days', 100, 3600, now() - interval '60 days', false
    FROM generate_series(1, 1200) AS g`;
  await db.sql`
    INSERT INTO customer_languages (webhook_source, sender_key, language, updated_at)
    SELECT 'twilio', '1555091' || lpad(g::text, 4, '0'), 'es', now() - interval '60 days'
    FROM generate_series(1, 1200) AS g`;
  const limit = holdInTransaction(db.sql, (tx) =>
    tx`UPDATE webhook_rate_limits SET last_request_at = now() WHERE phone_number = 'whatsapp:+15550910001'`);
  const language = holdInTransaction(db.sql, (tx) => tx`UPDATE customer_languages SET updated_at = now() WHERE sender_key = '15550910001'`);
  await Promise.all([limit.held, language.held]);
  const waitingOn = (table: string) => async () => (await db.sql`
    SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'wagate-test-cleanup-race'
      AND wait_event_type = 'Lock' AND query LIKE ${`%DELETE FROM "${table}" %`}`).length > 0;

  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-cleanup-race' });
  try {
    const cleanup = runCleanup(sql, loadConfig(testEnv(db.url)), { days: 9, personalDataDays: 7, orderDays: 365 });
    await waitFor('the cleanup to wait on the renewed rate-limit row', waitingOn('webhook_rate_limits'));
    await limit.release();
    await waitFor('the cleanup to wait on the renewed language', waitingOn('customer_languages'));
    await language.release();
    const report = await cleanup;
    expect([report.webhook_rate_limits, report.customer_languages]).toEqual([1199, 1199]);
  } finally {
    await sql.end();
  }
  expect(await db.sql`SELECT phone_number FROM webhook_rate_limits WHERE phone_number LIKE 'whatsapp:+1555091%'`).toEqual([{ phone_number: 'whatsapp:+15550910001' }]);
  expect(await db.sql`SELECT sender_key FROM customer_languages WHERE sender_key LIKE '1555091%'`).toEqual([{ sender_key: '15550910001' }]);
});
