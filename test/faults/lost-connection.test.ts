import { createDatabase, transaction } from '../../src/db/client';
import { createTestDatabase, type TestDatabase } from '../support/database';

/**
 * A transaction whose connection is lost must not hand the dead connection back to the pool:
 * in postgres 3.4.9 the next query sent on it would never settle, and a worker froze after
 * a Postgres outage with a message claimed and never finished.
 */
const SETTLE_BOUND_MS = 10_000;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});

afterAll(async () => {
  await db.drop();
});

function settlesWithin<T>(work: Promise<T>, ms: number): Promise<T | 'never settled'> {
  return Promise.race([work, new Promise<'never settled'>((resolve) => setTimeout(() => resolve('never settled'), ms).unref())]);
}

it('after a transaction loses its connection, the pool still answers', async () => {
  const sql = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 3, statementTimeoutMs: 30_000, applicationName: 'wagate-lost-connection' });
  try {
    const failed = transaction(sql, async (tx) => {
      const [backend] = await tx<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      await db.sql`SELECT pg_terminate_backend(${backend!.pid})`;
      return tx`SELECT 1`;
    });
    await expect(failed).rejects.toMatchObject({ code: expect.stringMatching(/CONNECTION_CLOSED|CONNECTION_DESTROYED|57P01|ECONNRESET/) });
    const after = await settlesWithin(sql<{ one: number }[]>`SELECT 1 AS one`, SETTLE_BOUND_MS);
    expect(after).not.toBe('never settled');
    expect((after as { one: number }[])[0]!.one).toBe(1);
  } finally {
    await sql.end({ timeout: 1 });
  }
});
