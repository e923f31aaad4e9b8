import { concurrentIndexNames, readMigrations } from '../../src/db/migrate';

/**
 * A plain CREATE INDEX holds a SHARE lock on its table for the whole build, and every write to it
 * waits: on orders or outbound_messages (whose receipts every ingest commit writes), a build of
 * a large table would answer webhooks 503 for its length. So a migration that runs in a
 * transaction builds indexes only on the tables it creates itself; any other is built
 * CONCURRENTLY, in a migration of its own (`-- wagate: no transaction`).
 */
const INDEX_BUILD = /CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY)(?:IF\s+NOT\s+EXISTS\s+)?[\w."]+\s+ON\s+(?:ONLY\s+)?"?([\w.]+)"?/gi;
const TABLE_CREATION = /CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"?([\w.]+)"?/gi;
const withoutComments = (sql: string) => sql.replace(/--.*$/gm, '');

it('builds an index on a table that exists already only concurrently, outside a transaction', () => {
  const plainBuildsOnExistingTables = readMigrations().flatMap((migration) => {
    const sql = withoutComments(migration.sql);
    const created = new Set([...sql.matchAll(TABLE_CREATION)].map((match) => match[1]!.toLowerCase()));
    return [...sql.matchAll(INDEX_BUILD)].map((match) => match[1]!.toLowerCase()).filter((table) => !created.has(table)).map((table) => `${migration.name}: ${table}`);
  });
  expect(plainBuildsOnExistingTables).toEqual([]);
});

it('names every index it builds concurrently, so that a rerun finds one a dead build left invalid', () => {
  expect(() => concurrentIndexNames('CREATE INDEX CONCURRENTLY ON orders (created_at)')).toThrow(/without a name/);
  expect(concurrentIndexNames('CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_idx ON orders (created_at)')).toEqual(['orders_created_idx']);
  for (const migration of readMigrations()) {
    const builds = (withoutComments(migration.sql).match(/CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY/gi) ?? []).length;
    expect([migration.name, concurrentIndexNames(withoutComments(migration.sql)).length]).toEqual([migration.name, builds]);
  }
});
