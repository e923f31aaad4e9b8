import { createDatabase, type Sql } from '../../src/db/client';
import { warmUpLedger } from '../../src/ledger/warm-up';
import { createTestDatabase, type TestDatabase } from '../support/database';

/**
 * The ingest's warm-up runs one ledger batch on each connection its group commit will use, each
 * in a transaction it rolls back. The batches used to share their ids and sender, so each waited
 * on the one before it until its rollback: one after another, and on a slow database the last
 * ran out of time, the warm-up failed, and the rehearsal that follows it was skipped.
 */
const CONNECTIONS = 4;
/**
 * Each insert into webhook_messages (two a batch), slowed down after its row is in, so that a
 * batch inserting the same key waits for it: four batches in a row outlast the statement
 * timeout, one does not by far.
 */
const INSERT_SECONDS = 0.25;
const STATEMENT_TIMEOUT_MS = 1500;

let db: TestDatabase;
let pool: Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.unsafe(`
    CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(${INSERT_SECONDS}); RETURN NULL; END $$;
    CREATE TRIGGER slow_insert AFTER INSERT ON webhook_messages FOR EACH ROW EXECUTE FUNCTION slow_insert();`);
  pool = createDatabase({ url: db.url, maxConnections: CONNECTIONS, connectTimeoutSeconds: 5, statementTimeoutMs: STATEMENT_TIMEOUT_MS, applicationName: 'wagate-warm-up-test' });
});

afterAll(async () => {
  await pool.end({ timeout: 1 });
  await db.drop();
});

it('warms every connection at once, none waiting on another\'s rows, and keeps nothing', async () => {
  await warmUpLedger({ sql: pool, connections: CONNECTIONS, rateLimits: { whatsapp: { maxRequests: 100, windowSeconds: 3600 }, twilio: { maxRequests: 100, windowSeconds: 3600 } }, outboxLeaseSeconds: 30 });
  const [kept] = await db.sql<{ messages: number; outbox: number; limits: number }[]>`
    SELECT (SELECT count(*) FROM webhook_messages)::integer AS messages, (SELECT count(*) FROM outbox)::integer AS outbox,
           (SELECT count(*) FROM webhook_rate_limits)::integer AS limits`;
  expect(kept).toEqual({ messages: 0, outbox: 0, limits: 0 });
});
