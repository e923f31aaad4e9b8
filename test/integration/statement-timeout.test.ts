import { loadConfig } from '../../src/config';
import { databaseFromConfig } from '../../src/db/client';
import { createTestDatabase, type TestDatabase } from '../support/database';

/**
 * `migrate` and the operator commands run without a statement timeout (an index build on a
 * big table may take minutes), whatever default the database or the role carries: operators
 * are told to give wagate's role a short one.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  await db.sql.unsafe(`ALTER DATABASE ${db.name} SET statement_timeout = '50ms'`);
});

afterAll(async () => {
  await db.drop();
});

async function statementTimeoutOf(statementTimeoutMs?: number): Promise<string> {
  const config = loadConfig({ DATABASE_URL: db.url, DB_STATEMENT_TIMEOUT_MS: '3000' });
  const sql = databaseFromConfig(config, 'wagate-test', { maxConnections: 1, statementTimeoutMs });
  try {
    const [row] = await sql<{ statement_timeout: string }[]>`SHOW statement_timeout`;
    return row!.statement_timeout;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

it('turns the timeout off on a connection asked for none, over a database default', async () => {
  expect(await statementTimeoutOf(0)).toBe('0');
});

it('applies DB_STATEMENT_TIMEOUT_MS otherwise', async () => {
  expect(await statementTimeoutOf()).toBe('3s');
});
