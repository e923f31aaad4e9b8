import postgres from 'postgres';
import type { Sql } from '../../src/db/client';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { createInProcessIngest, type InProcessIngest } from '../support/in-process';
import { waitFor } from '../support/wait';

// /readyz is on the public port without a token: a client looping on it must not turn into
// as many queries, queued before the ledger's commits on the same pool.
let db: TestDatabase;
let counted: Sql;
let readinessQueries = 0;
let ingest: InProcessIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  counted = postgres(db.url, {
    max: 4,
    onnotice: () => undefined,
    debug: (_connection, query) => {
      if (query.includes('pg_is_in_recovery()')) readinessQueries += 1;
    },
  }) as Sql;
  ingest = createInProcessIngest(counted, db.url);
});

afterAll(async () => {
  await ingest.drain();
  await counted.end({ timeout: 1 });
  await db.drop();
});

const readyz = () => ingest.request({ method: 'GET', url: '/readyz' });

it('asks Postgres once for a flood of /readyz requests, and again once its answer is a second old', async () => {
  const before = readinessQueries;
  const started = performance.now();
  const answers = await Promise.all(Array.from({ length: 2000 }, readyz));
  expect(answers.every((answer) => answer.statusCode === 200 && answer.json().postgres === 'ok')).toBe(true);
  const again = await Promise.all(Array.from({ length: 2000 }, readyz));
  expect(again.every((answer) => answer.statusCode === 200)).toBe(true);
  // Once at a time and at most once a second, however slow this machine was.
  const seconds = Math.floor((performance.now() - started) / 1000);
  expect(readinessQueries - before).toBeGreaterThanOrEqual(1);
  expect(readinessQueries - before).toBeLessThanOrEqual(seconds + 1);

  // The answer is not kept for good: a later probe asks again.
  const asked = readinessQueries;
  await waitFor('a fresh question to Postgres', async () => (await readyz()).statusCode === 200 && readinessQueries > asked);
});
