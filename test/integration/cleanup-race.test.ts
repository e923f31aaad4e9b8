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

  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName: 'wagate-test-cleanup-race' });
  try {
    const cleanup = runCleanup(sql, loadConfig(testEnv(db.url)), { days: 9, personalDataDays: 7, orderDays: 365 });
    await waitFor('the cleanup to wait on the released row', async () =>
      (await db.sql`SELECT 1 FROM pg_stat_activity WHERE application_name = 'wagate-test-cleanup-race' AND wait_event_type = 'Lock'`).length > 0);
    await release.release();
    const report = await cleanup;
    expect(report.webhook_messages_whatsapp).toBe(0);
    expect(await db.sql`SELECT status, payload IS NOT NULL AS kept FROM webhook_messages WHERE id = ${row!.id}`).toEqual([{ status: 'queued', kept: true }]);
  } finally {
    await sql.end();
  }
});
