import { randomBytes } from 'node:crypto';
import { createDatabase, type Sql } from '../../src/db/client';
import { STATS_PATH } from '../../src/http/app';
import { createTestDatabase, holdInTransaction, type TestDatabase } from '../support/database';
import { createInProcessIngest, type InProcessIngest } from '../support/in-process';
import { ADMIN_TOKEN } from '../support/ingest';
import { waitFor } from '../support/wait';

/** The ingest's pool, named so that its backends can be told apart in pg_stat_activity. */
const POOL_NAME = `wagate-stats-pool-${randomBytes(4).toString('hex')}`;

let db: TestDatabase;
let pool: Sql;
let ingest: InProcessIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createDatabase({ url: db.url, maxConnections: 10, connectTimeoutSeconds: 5, statementTimeoutMs: 30000, applicationName: POOL_NAME });
  ingest = createInProcessIngest(pool, db.url);
});

afterAll(async () => {
  await ingest.drain();
  await pool.end({ timeout: 1 });
  await db.drop();
});

const stats = () => ingest.request({ method: 'GET', url: `${STATS_PATH}?hours=2160`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });

/** The pool's connections to the server: all of them, those in a statement or a transaction, and those waiting on a lock. */
async function poolBackends(): Promise<{ open: number; busy: number; locked: number }> {
  const [row] = await db.sql<{ open: number; busy: number; locked: number }[]>`
    SELECT count(*)::integer AS open, (count(*) FILTER (WHERE state <> 'idle'))::integer AS busy,
           (count(*) FILTER (WHERE wait_event_type = 'Lock'))::integer AS locked
    FROM pg_stat_activity WHERE application_name = ${POOL_NAME} AND datname = current_database()`;
  return row!;
}

describe('stats on the shared pool', () => {
  it('hold at most one of its connections, and a call while one is computed gets 503 with Retry-After', async () => {
    // Holds every stats query at its first read of webhook_messages, so the call stays under way.
    const lock = holdInTransaction(db.sql, (tx) => tx`LOCK TABLE webhook_messages IN ACCESS EXCLUSIVE MODE`);
    await lock.held;
    const first = stats();
    await waitFor('the stats call to wait on the lock', async () => (await poolBackends()).locked >= 1);
    const others = [stats(), stats()];
    // Answered at once, or (were they queued behind the lock too) not within 3 s.
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([Promise.all(others), new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 3000)))]);
    clearTimeout(timer);
    expect(await poolBackends()).toEqual({ open: 1, busy: 1, locked: 1 });
    expect(answered?.map((response) => response.statusCode)).toEqual([503, 503]);
    for (const busy of answered!) {
      expect(busy.headers['retry-after']).toBe('1');
      expect(busy.json()).toEqual({ error: 'stats are being computed for another request; retry in 1 s' });
    }
    await lock.release();
    expect((await first).statusCode).toBe(200);
    // Free again once the first is done, still on the one connection.
    expect((await stats()).statusCode).toBe(200);
    expect((await poolBackends()).open).toBe(1);
  });
});

describe('stats that outlast the statement timeout', () => {
  it('answer 503 saying to ask for fewer hours, and the next call, unhindered, is answered', async () => {
    // Long enough for an empty window's queries on a busy machine, short for a test to wait out.
    const impatient = createDatabase({ url: db.url, maxConnections: 2, connectTimeoutSeconds: 5, statementTimeoutMs: 1500, applicationName: `${POOL_NAME}-impatient` });
    const gateway = createInProcessIngest(impatient, db.url);
    try {
      const ask = () => gateway.request({ method: 'GET', url: `${STATS_PATH}?hours=720`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      // A scan slower than the timeout, as a wide window over a busy shop's rows would be.
      const lock = holdInTransaction(db.sql, (tx) => tx`LOCK TABLE webhook_messages IN ACCESS EXCLUSIVE MODE`);
      await lock.held;
      const slow = await ask().finally(() => lock.release());
      expect([slow.statusCode, slow.headers['content-type'], slow.headers['retry-after'], slow.json()]).toEqual([
        503,
        expect.stringContaining('application/json'),
        undefined,
        { error: "stats over 720 hours took longer than the database's statement timeout (DB_STATEMENT_TIMEOUT_MS); ask for fewer hours" },
      ]);
      expect((await ask()).statusCode).toBe(200);
    } finally {
      await gateway.drain();
      await impatient.end({ timeout: 1 });
    }
  });
});
