import { createDatabase, transaction } from '../../src/db/client';
import { createTestDatabase, withPort, type TestDatabase } from '../support/database';
import { startJudgingProxy } from '../support/judging-proxy';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { runCountingUnhandledRejections } from '../support/unhandled-rejections';
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

/** A one-connection pool that reaches Postgres through the test's proxy. */
function poolThroughProxy(applicationName: string) {
  return createDatabase({ url: withPort(db.url, proxy.port), maxConnections: 1, connectTimeoutSeconds: 3, statementTimeoutMs: 30_000, applicationName });
}

function settlesWithin<T>(work: Promise<T>, ms: number): Promise<T | 'never settled'> {
  return Promise.race([work, new Promise<'never settled'>((resolve) => setTimeout(() => resolve('never settled'), ms).unref())]);
}

it('after a transaction loses its connection, the pool still answers', async () => {
  const sql = poolThroughProxy('wagate-lost-connection');
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

it('counts an unhandled rejection in a scenario run apart (the control for the next test)', async () => {
  // Without this, a count that stayed empty would prove nothing: the next test relies on it.
  const run = await runCountingUnhandledRejections('deliberate-rejection');
  expect(run).toEqual({ outcome: 'rejected', unhandled: ['Error: deliberate'] });
});

it('a connection lost while it reads the array types fails the waiting query, not the process', async () => {
  // postgres.js reads the array types as the first statement of every new connection, and in
  // 3.4.9 dropped that statement's failure as an unhandled rejection, which ends a Node process
  // (porsager/postgres#1192; patched in patches/). An outage that began just then killed ingest.
  // The query runs in a process of its own, which counts its unhandled rejections: in this one,
  // Jest's copy of `process` would hear none.
  // Reset when the client sends a statement containing 'typarray'.
  const resetting = await startJudgingProxy(new URL(db.url), 5432, { fromClient: (chunk) => (chunk.includes('typarray') ? 'reset' : 'pass') });
  try {
    const run = await runCountingUnhandledRejections('first-query', { DATABASE_URL: withPort(db.url, resetting.port) });
    expect(resetting.resets()).toBe(1);
    expect(run.outcome).toMatchObject({ code: expect.stringMatching(/ECONNRESET|CONNECTION_CLOSED/) });
    expect(run.unhandled).toEqual([]);
  } finally {
    await resetting.close();
  }
});

it('a query on a transaction\'s connection that Postgres ended is refused, not the end of the process', async () => {
  // postgres.js 3.4.9 wrote it to the closed socket from a setImmediate: a TypeError no caller
  // could catch, which ended the process (a reshard whose lock's backend was terminated, a
  // dead-letter command across a Postgres restart). Patched in patches/.
  const run = await runCountingUnhandledRejections('reserved-after-terminate', { DATABASE_URL: db.url });
  expect(run.outcome).toEqual({ code: 'CONNECTION_CLOSED' });
  expect(run.unhandled).toEqual([]);
});

it('a pool reconnects within about a second of Postgres returning, however long it was refused', async () => {
  // postgres.js's default backoff reaches 10-20 s after seven failed attempts; a pool that
  // waited that long kept a process answering 503 (and a worker from heartbeating) long after
  // Postgres was back.
  const sql = poolThroughProxy('wagate-reconnect-backoff');
  try {
    proxy.setMode('refuse');
    for (let failed = 0; failed < 8; failed += 1) {
      await expect(sql`SELECT 1`).rejects.toMatchObject({ code: expect.stringMatching(/ECONNRESET|CONNECTION_CLOSED|ECONNREFUSED/) });
    }
    proxy.setMode('forward');
    const started = performance.now();
    const after = await settlesWithin(sql<{ one: number }[]>`SELECT 1 AS one`, SETTLE_BOUND_MS);
    expect(after).not.toBe('never settled');
    // One backoff (at most 1 s) and a connection; the default would wait 10 s or more.
    expect(performance.now() - started).toBeLessThan(5_000);
  } finally {
    proxy.setMode('forward');
    await sql.end({ timeout: 1 });
  }
}, 60_000);
