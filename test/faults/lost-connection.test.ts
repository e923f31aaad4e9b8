import { createDatabase, transaction } from '../../src/db/client';
import { createTestDatabase, withPort, type TestDatabase } from '../support/database';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait';

/**
 * A transaction whose connection is lost must not hand the dead connection back to the pool:
 * in postgres 3.4.9 the next query sent on it would never settle, and a worker froze after
 * a Postgres outage with a message claimed and never finished.
 */
const SETTLE_BOUND_MS = 10_000;

let db: TestDatabase;
let proxy: TcpProxy;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  proxy = await startTcpProxy(Number(new URL(db.url).port || 5432), new URL(db.url).hostname);
});

afterAll(async () => {
  await proxy.close();
  await db.drop();
});

function settlesWithin<T>(work: Promise<T>, ms: number): Promise<T | 'never settled'> {
  return Promise.race([work, new Promise<'never settled'>((resolve) => setTimeout(() => resolve('never settled'), ms).unref())]);
}

it('after a transaction loses its connection, the pool still answers', async () => {
  const sql = createDatabase({
    url: withPort(db.url, proxy.port),
    maxConnections: 1,
    connectTimeoutSeconds: 3,
    statementTimeoutMs: 30_000,
    applicationName: 'wagate-lost-connection',
  });
  try {
    // The connection drops while a query of the transaction runs on it, as in an outage.
    const failed = transaction(sql, (tx) => tx`SELECT pg_sleep(30)`).then(() => 'committed', (error: unknown) => error);
    await waitFor('the transaction running pg_sleep', async () => (await db.sql`
      SELECT 1 FROM pg_stat_activity WHERE application_name = 'wagate-lost-connection' AND query LIKE '%pg_sleep%' AND state = 'active'`).length > 0);
    proxy.setMode('refuse');
    expect(await failed).toMatchObject({ code: expect.stringMatching(/CONNECTION_CLOSED|CONNECTION_DESTROYED|ECONNRESET/) });
    proxy.setMode('forward');
    const after = await settlesWithin(sql<{ one: number }[]>`SELECT 1 AS one`, SETTLE_BOUND_MS);
    expect(after).not.toBe('never settled');
    expect((after as { one: number }[])[0]!.one).toBe(1);
  } finally {
    await sql.end({ timeout: 1 });
  }
});
