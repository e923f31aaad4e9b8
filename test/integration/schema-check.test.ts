import { loadConfig } from '../../src/config';
import { migrate, readMigrations } from '../../src/db/migrate';
import { missingMigrations, SCHEMA_WAIT_MS, waitForSchema } from '../../src/db/schema-check';
import { topologyFromConfig } from '../../src/queue/depths';
import { deleteTopology } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { randomQueuePrefix, testEnv } from '../support/ingest';
import { runWagate, spawnWagate, type ChildIngest } from '../support/process';
import { waitFor } from '../support/wait';

const migrations = readMigrations();
const newest = migrations.at(-1)!;

describe('a process started on a database that lacks its migrations', () => {
  const databases: TestDatabase[] = [];
  const prefix = randomQueuePrefix();
  let ingest: ChildIngest | undefined;

  afterAll(async () => {
    await ingest?.stop();
    await deleteTopology(topologyFromConfig(loadConfig({ QUEUE_PREFIX: prefix, WORK_SHARDS: testEnv('').WORK_SHARDS! })));
    await Promise.all(databases.map((db) => db.drop()));
  });

  async function database(applied: number): Promise<TestDatabase> {
    const db = await createTestDatabase({ migrate: false });
    databases.push(db);
    if (applied > 0) await migrate(db.sql, migrations.slice(0, applied));
    return db;
  }

  it('names what is missing only for migrations the release ships, not for newer ones (a rollback)', async () => {
    const empty = await database(0);
    expect(await missingMigrations(empty.sql)).toEqual(migrations.map((m) => m.name));
    const behind = await database(migrations.length - 1);
    expect(await missingMigrations(behind.sql)).toEqual([newest.name]);
    const olderRelease = migrations.slice(0, -1);
    expect(await missingMigrations(behind.sql, olderRelease)).toEqual([]);
  });

  it('ends the wait at once when a stop was asked for, even on a database that has every migration', async () => {
    const complete = await database(migrations.length);
    const stop = new AbortController();
    const reason = new Error('stopped by SIGTERM while starting');
    stop.abort(reason);
    await expect(waitForSchema(complete.sql, { databaseUrl: complete.url, onWaiting: () => undefined, stop: stop.signal })).rejects.toBe(reason);
    await expect(waitForSchema(complete.sql, { databaseUrl: complete.url, onWaiting: () => undefined })).resolves.toBeUndefined();
  });

  it('holds an ingest unready until `wagate migrate` applies the newest migration, then serves', async () => {
    const db = await database(migrations.length - 1);
    const starting = spawnWagate('ingest', testEnv(db.url, { QUEUE_PREFIX: prefix }), SCHEMA_WAIT_MS);
    // Its check has run once and found the schema behind: its connection sits idle after the query.
    await waitFor('the ingest to have checked the schema', async () => {
      const [check] = await db.sql`SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'wagate-schema-check' AND state = 'idle' AND query LIKE '%schema_migrations%'`;
      return check;
    }, SCHEMA_WAIT_MS);
    expect(await migrate(db.sql, migrations)).toEqual([newest.name]);
    ingest = await starting;
    expect(ingest.logs.find((entry) => entry.missing)).toMatchObject({ missing: [newest.name] });
    const ready = await fetch(`${ingest.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
  }, SCHEMA_WAIT_MS + 30_000);

  it('stops a worker on an empty database after the wait, naming the database, the migrations and what to run', async () => {
    const db = await database(0);
    const started = Date.now();
    const result = await runWagate(['worker'], testEnv(db.url, { QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' }));
    expect(result.code).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(SCHEMA_WAIT_MS);
    // The database as the support code reaches it (TEST_DATABASE_URL or the default), as user@host:port/name.
    const server = new URL(db.url);
    expect(result.stderr).toContain(`wagate worker: failed: the database ${server.username || 'postgres'}@${server.hostname}:${server.port || '5432'}${server.pathname} lacks ${migrations.length} migration(s) this release needs (${migrations[0]!.name}`);
    expect(result.stderr).toContain('run `wagate migrate` with this release first');
    expect(result.stdout).not.toContain('worker started');
  }, SCHEMA_WAIT_MS + 30_000);
});
