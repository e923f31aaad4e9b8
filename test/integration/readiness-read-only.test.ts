import postgres from 'postgres';
import type { Sql } from '../../src/db/client';
import { postgresAnswers } from '../../src/db/health';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { createInProcessIngest, type InProcessIngest } from '../support/in-process';

// After a failover the pool can reach a server that takes no writes (a stale DNS name, the old
// primary back as a standby): it answers SELECT 1, and every ledger commit fails with 25006.
let db: TestDatabase;
let readOnly: Sql;
let ingest: InProcessIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  readOnly = postgres(db.url, { max: 2, onnotice: () => undefined, connection: { default_transaction_read_only: true } }) as Sql;
  ingest = createInProcessIngest(readOnly, db.url);
});

afterAll(async () => {
  await ingest.drain();
  await readOnly.end({ timeout: 1 });
  await db.drop();
});

it('is not ready on a Postgres that takes no writes, and says so', async () => {
  const answer = await ingest.request({ method: 'GET', url: '/readyz' });
  expect([answer.statusCode, answer.json()]).toEqual([503, expect.objectContaining({ status: 'not ready', postgres: 'read-only' })]);
});

it('tells a server that takes writes from one that does not', async () => {
  expect(await postgresAnswers(readOnly)).toBe('read-only');
  expect(await postgresAnswers(db.sql)).toBe('ok');
});
