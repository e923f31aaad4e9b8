import { createDatabase, type Sql } from '../../src/db/client';
import { lockRetryPauseMs, lockTimeoutForTry, migrate, readMigrations, type Migration } from '../../src/db/migrate';
import { uniqueWamid } from '../support/webhooks';
import { ADMIN_DATABASE_URL, createTestDatabase, type TestDatabase } from '../support/database';
import { waitFor } from '../support/wait';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});

afterAll(async () => {
  await db.drop();
});

describe('migrate', () => {
  it('applies every migration once when several run at the same time, and is a no-op afterwards', async () => {
    const pools = [1, 2, 3].map(() =>
      createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'wagate-test' }),
    );
    const results = await Promise.all(pools.map((sql) => migrate(sql)));
    const names = readMigrations().map((m) => m.name);
    // Exactly one runner applied them; the others waited on the lock and found nothing to do.
    expect(results.filter((applied) => applied.length > 0)).toEqual([names]);
    expect(await migrate(db.sql)).toEqual([]);
    const rows = await db.sql`SELECT name FROM schema_migrations ORDER BY version`;
    expect(rows.map((r) => r.name)).toEqual(names);
    await Promise.all(pools.map((sql) => sql.end()));
  });

  it('accepts a database that applied an earlier text of 014 which differed only in its comments', async () => {
    const earlier = 'a23b1114003a627a3dc485868bc53e2fdce6dd1c756ae0a5ab8b0c527272717c';
    await db.sql`UPDATE schema_migrations SET checksum = ${earlier} WHERE version = 14`;
    try {
      expect(await migrate(db.sql)).toEqual([]);
    } finally {
      await db.sql`UPDATE schema_migrations SET checksum = ${readMigrations().find((m) => m.version === 14)!.checksum} WHERE version = 14`;
    }
    // Any other text of it is still refused.
    await db.sql`UPDATE schema_migrations SET checksum = 'something-else' WHERE version = 14`;
    try {
      await expect(migrate(db.sql)).rejects.toThrow(/014_unfinished_index_for_counts\.sql was changed after it was applied/);
    } finally {
      await db.sql`UPDATE schema_migrations SET checksum = ${readMigrations().find((m) => m.version === 14)!.checksum} WHERE version = 14`;
    }
  });

  it('upgrades a database that ran 011 as first shipped: its text is accepted, and 037 records the replies\' index it built', async () => {
    const earlier = '960b36c3feb97720dee6dbf25c6a7872b3594649c441b0bc7c80dc733c095701';
    const indexOid = async () => (await db.sql<{ oid: string }[]>`SELECT to_regclass('outbound_messages_created_at_idx')::oid::text AS oid`)[0]!.oid;
    const built = await indexOid();
    await db.sql`UPDATE schema_migrations SET checksum = ${earlier} WHERE version = 11`;
    await db.sql`DELETE FROM schema_migrations WHERE version = 37`;
    try {
      expect(await migrate(db.sql)).toEqual(['037_replies_created_at_index.sql']);
      // The same index, recorded rather than built again.
      expect(await indexOid()).toBe(built);
    } finally {
      await db.sql`UPDATE schema_migrations SET checksum = ${readMigrations().find((m) => m.version === 11)!.checksum} WHERE version = 11`;
    }
  });

  it('refuses to run when an applied migration was edited', async () => {
    const edited = readMigrations().map((m, i) => (i === 0 ? { ...m, checksum: 'edited' } : m));
    await expect(migrate(db.sql, edited)).rejects.toThrow(/001_ledger\.sql was changed after it was applied/);
  });
});

describe('migrate against a live database', () => {
  let live: TestDatabase;
  beforeAll(async () => {
    live = await createTestDatabase();
  });
  afterAll(async () => {
    await live.drop();
  });

  const extra = (version: number, sql: string): Migration => ({ version, name: `${version}_test.sql`, sql, checksum: `test-${version}` });
  const insertMessage = (sql: typeof live.sql, phone = '1555') =>
    sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status) VALUES ('whatsapp', ${uniqueWamid()}, ${phone}, 'queued')`;

  it('does not hold ingest writes behind DDL that waits for a long transaction: it gives up its lock request and retries', async () => {
    const blocker = await live.sql.reserve();
    await blocker`BEGIN`;
    await blocker`SELECT count(*) FROM webhook_messages`;
    const runner = createDatabase({ url: live.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'wagate-test' });
    const writer = createDatabase({ url: live.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 10000, applicationName: 'wagate-test' });
    let lockTimeouts = 0;
    let signalTimeout: () => void = () => undefined;
    const firstTimeout = new Promise<void>((resolve) => (signalTimeout = resolve));
    const migrations = [...readMigrations(), extra(9001, 'ALTER TABLE webhook_messages ADD COLUMN probe integer')];
    const migrating = migrate(runner, migrations, {
      lockTimeoutMs: 200,
      lockAttempts: 1000,
      onLockTimeout: () => {
        lockTimeouts += 1;
        signalTimeout();
      },
    });
    await firstTimeout;
    // The long transaction is still open, and a write still goes through (it would wait for
    // the blocker to end, and hit its statement timeout, behind a DDL without lock_timeout).
    await insertMessage(writer);
    await blocker`COMMIT`;
    blocker.release();
    expect(await migrating).toEqual(['9001_test.sql']);
    expect(lockTimeouts).toBeGreaterThan(0);
    await Promise.all([runner.end(), writer.end()]);
  });

  it('holds writers behind its lock request for 200 ms at a time by default, and pauses longer after each try', async () => {
    const blocker = await live.sql.reserve();
    await blocker`BEGIN`;
    await blocker`SELECT count(*) FROM webhook_messages`;
    const runner = createDatabase({ url: live.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'wagate-test-migrate' });
    const timedOutAt: number[] = [];
    const migrations = [...readMigrations(), extra(9010, 'ALTER TABLE webhook_messages ADD COLUMN probe_default integer')];
    const migrating = migrate(runner, migrations, { onLockTimeout: () => void timedOutAt.push(Date.now()) });
    // The waiting DDL's own statement names the lock timeout it runs with.
    const waiting = await waitFor('the DDL to wait for its lock', async () =>
      (await live.sql<{ query: string }[]>`
        SELECT query FROM pg_stat_activity WHERE application_name = 'wagate-test-migrate' AND wait_event_type = 'Lock'`)[0] ?? null);
    expect(waiting.query).toMatch(/SET LOCAL lock_timeout = 200;/);
    await waitFor('three tries to time out', () => timedOutAt.length >= 3, 30_000);
    await blocker`COMMIT`;
    blocker.release();
    expect(await migrating).toEqual(['9010_test.sql']);
    // Each gap is the pause after a try and the next try's wait: a busy machine only lengthens it.
    expect(timedOutAt[1]! - timedOutAt[0]!).toBeGreaterThanOrEqual(lockRetryPauseMs(1));
    expect(timedOutAt[2]! - timedOutAt[1]!).toBeGreaterThanOrEqual(lockRetryPauseMs(2));
    expect([lockRetryPauseMs(1), lockRetryPauseMs(2), lockRetryPauseMs(3), lockRetryPauseMs(10)]).toEqual([500, 1000, 2000, 5000]);
    // No autovacuum ran meanwhile, so every try waited 200 ms; with one, past the deadlock check
    // that cancels it, but never past 1.5 s of held commits.
    expect([lockTimeoutForTry(200, false, 1000), lockTimeoutForTry(200, true, 1000), lockTimeoutForTry(5000, true, 1000), lockTimeoutForTry(200, true, 5000)])
      .toEqual([200, 1200, 5000, 200]);
    await runner.end();
  });

  it('keeps its 200 ms tries while a vacuum runs on a table it does not change, which is not in its way', async () => {
    await live.sql`CREATE TABLE vacuum_bait AS SELECT g AS id, repeat('x', 200) AS filler FROM generate_series(1, 20000) AS g`;
    await live.sql`DELETE FROM vacuum_bait WHERE id % 2 = 0`;
    // A manual VACUUM slowed down as far as Postgres allows: it runs for minutes unless cancelled.
    const vacuuming = createDatabase({ url: live.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'wagate-test-vacuum' });
    const vacuumSession = await vacuuming.reserve();
    await vacuumSession`SET vacuum_cost_delay = 100`;
    await vacuumSession`SET vacuum_cost_limit = 1`;
    const vacuum = vacuumSession`VACUUM vacuum_bait`;
    vacuum.catch(() => undefined);
    const blocker = await live.sql.reserve();
    const runner = createDatabase({ url: live.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'wagate-test-migrate-vacuum' });
    try {
      await waitFor('the vacuum to run', async () => (await live.sql`SELECT 1 FROM pg_stat_progress_vacuum WHERE datname = current_database()`).length > 0);
      await blocker`BEGIN`;
      await blocker`SELECT count(*) FROM webhook_messages`;
      let timeouts = 0;
      const migrations = [...readMigrations(), extra(9011, 'ALTER TABLE webhook_messages ADD COLUMN probe_beside_vacuum integer')];
      const migrating = migrate(runner, migrations, { onLockTimeout: () => void (timeouts += 1) });
      migrating.catch(() => undefined);
      // The try after a timed-out one, the vacuum still running, waits as the first did.
      await waitFor('a first try to time out', () => timeouts >= 1, 30_000);
      const waiting = await waitFor('the second try to wait for its lock', async () => {
        const [row] = await live.sql<{ query: string }[]>`
          SELECT query FROM pg_stat_activity WHERE application_name = 'wagate-test-migrate-vacuum' AND wait_event_type = 'Lock'`;
        return row ?? null;
      }, 30_000);
      expect((await live.sql`SELECT 1 FROM pg_stat_progress_vacuum WHERE datname = current_database()`).length).toBeGreaterThan(0);
      expect(waiting.query).toMatch(/SET LOCAL lock_timeout = 200;/);
      await blocker`COMMIT`;
      expect(await migrating).toEqual(['9011_test.sql']);
    } finally {
      // Committed already unless an assertion failed: a transaction left open would hold every later test's migration.
      await blocker`ROLLBACK`.catch(() => undefined);
      blocker.release();
      await live.sql`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'wagate-test-vacuum'`;
      await vacuum.catch(() => undefined);
      vacuumSession.release();
      await Promise.all([runner.end(), vacuuming.end()]);
      await live.sql`DROP TABLE vacuum_bait`;
    }
  });

  it('drops an index a crashed CREATE INDEX CONCURRENTLY left invalid, and builds it again', async () => {
    await insertMessage(live.sql, '1666');
    await insertMessage(live.sql, '1666');
    const unique = extra(9002, '-- wagate: no transaction\nCREATE UNIQUE INDEX CONCURRENTLY probe_phone_idx ON webhook_messages (phone_number)');
    const migrations = [...readMigrations(), extra(9001, 'ALTER TABLE webhook_messages ADD COLUMN probe integer'), unique];
    // Duplicates make the build fail half-way, as a crash would: the index stays, invalid.
    await expect(migrate(live.sql, migrations)).rejects.toThrow(/9002_test.sql failed/);
    const isValid = async () =>
      (await live.sql<{ valid: boolean }[]>`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass('probe_phone_idx')`)[0]?.valid;
    expect(await isValid()).toBe(false);
    await live.sql`DELETE FROM webhook_messages WHERE phone_number IN ('1555', '1666')`;
    expect(await migrate(live.sql, migrations)).toEqual(['9002_test.sql']);
    expect(await isValid()).toBe(true);
  });

  it('names the index a holder of the migration lock builds concurrently, which is to be waited for, not ended', async () => {
    // An old snapshot (a long report, a pg_dump) that the build waits for.
    const reader = await live.sql.reserve();
    await reader`BEGIN ISOLATION LEVEL REPEATABLE READ`;
    await reader`SELECT count(*) FROM orders`;
    const migrations = [...readMigrations(), extra(9001, 'ALTER TABLE webhook_messages ADD COLUMN probe integer'),
      extra(9004, '-- wagate: no transaction\nCREATE INDEX CONCURRENTLY probe_waiting_idx ON webhook_messages (probe)')];
    const runner = createDatabase({ url: live.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'wagate-migrate' });
    const building = migrate(runner, migrations);
    await waitFor('the first run to be building', async () => (await live.sql`SELECT 1 FROM pg_stat_progress_create_index WHERE relid = 'webhook_messages'::regclass`).length > 0);
    const told: (string | null)[] = [];
    const waiting = migrate(live.sql, migrations, { onLockHeld: (holder) => told.push(holder.building), lockHolderReportMs: { first: 0, every: 60_000 } });
    try {
      await waitFor('the waiting run to name the build', () => told.some((index) => index?.startsWith('probe_waiting_idx (')));
    } finally {
      await reader`COMMIT`;
      reader.release();
    }
    expect(await building).toContain('9004_test.sql');
    await expect(waiting).resolves.toEqual([]);
    await runner.end();
  });

  it('records an index a run built but died before recording, instead of failing on it at every run', async () => {
    const built = extra(9003, '-- wagate: no transaction\nCREATE INDEX CONCURRENTLY probe_built_idx ON webhook_messages (message_type)');
    await live.sql.unsafe('CREATE INDEX CONCURRENTLY probe_built_idx ON webhook_messages (message_type)');
    expect(await migrate(live.sql, [...readMigrations(), extra(9001, 'ALTER TABLE webhook_messages ADD COLUMN probe integer'), built])).toEqual(['9003_test.sql']);
    expect(await live.sql`SELECT name FROM schema_migrations WHERE version = 9003`).toEqual([{ name: '9003_test.sql' }]);
  });
});

describe('the monitoring SQL that operators already run', () => {
  it('runs unchanged against the schema', async () => {
    await db.sql`
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status, duplicate_count, response_time_ms)
      VALUES ('whatsapp', 'wamid.a', '1555', 'queued', 2, 1200), ('whatsapp', 'wamid.b', '1556', 'processed', 0, 4)`;
    await db.sql`
      INSERT INTO webhook_rate_limits (webhook_source, phone_number, request_count, window_start, max_requests, window_seconds, total_requests, is_blocked)
      VALUES ('whatsapp', '1555', 120, now(), 100, 3600, 120, true)`;
    const [performance] = await db.sql.unsafe(`SELECT * FROM webhook_performance_stats WHERE webhook_source = 'whatsapp' ORDER BY hour DESC LIMIT 24;`);
    expect(Number(performance!.total_messages)).toBe(2);
    expect(Number(performance!.total_duplicates)).toBe(2);
    const duplicates = await db.sql.unsafe(`SELECT message_id, duplicate_count, phone_number FROM webhook_messages WHERE duplicate_count > 0 ORDER BY duplicate_count DESC;`);
    expect(duplicates).toEqual([{ message_id: 'wamid.a', duplicate_count: 2, phone_number: '1555' }]);
    const heavy = await db.sql.unsafe(`SELECT * FROM webhook_rate_limit_stats WHERE total_requests > 50 ORDER BY total_requests DESC;`);
    expect(heavy.map((r) => r.phone_number)).toEqual(['1555']);
    const blocked = await db.sql.unsafe(`SELECT * FROM webhook_rate_limits WHERE is_blocked = TRUE;`);
    expect(blocked).toHaveLength(1);
    const slow = await db.sql.unsafe(`SELECT * FROM webhook_messages WHERE response_time_ms > 1000;`);
    expect(slow.map((r) => r.message_id)).toEqual(['wamid.a']);
  });

  it('cuts the performance view\'s hours in UTC, whatever the session\'s time zone', async () => {
    // 10:10 and 10:40 UTC: one UTC hour, two hours of a zone half an hour off.
    await db.sql`
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status, response_time_ms, created_at)
      VALUES ('twilio', 'SMutc-a', '1557', 'processed', 3, '2026-11-02 10:10:00+00'), ('twilio', 'SMutc-b', '1557', 'processed', 3, '2026-11-02 10:40:00+00')`;
    const hours = await db.sql.begin(async (tx) => {
      await tx.unsafe(`SET LOCAL TimeZone = 'Asia/Kolkata'`);
      return tx.unsafe(`SELECT hour, total_messages FROM webhook_performance_stats WHERE webhook_source = 'twilio'`);
    });
    expect(hours.map((row) => [(row.hour as Date).toISOString(), Number(row.total_messages)])).toEqual([['2026-11-02T10:00:00.000Z', 2]]);
  });
});

/**
 * A pooler in transaction mode, as the migration sees it: each statement goes to the next of
 * `sessions` in turn, whatever session the one before ran on.
 */
function roundRobinPooler(sessions: unknown[]): Sql {
  let turn = 0;
  const next = () => sessions[turn++ % sessions.length]! as (...args: unknown[]) => unknown;
  const pooled = new Proxy(function pooled() {}, {
    apply: (_target, _this, args: unknown[]) => next()(...args),
    get: (_target, property) => {
      if (property === 'then') return undefined;
      if (property === 'release') return () => undefined;
      return (...args: unknown[]) => (next() as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[property]!(...args);
    },
  });
  return { reserve: async () => pooled } as unknown as Sql;
}

describe('migrate behind a pooler in transaction mode', () => {
  it('refuses, naming a direct connection, when its statements reach another session than the one holding the lock, and leaves no lock behind', async () => {
    // A pooler that sends each statement to the next free server connection.
    const pool = createDatabase({ url: db.url, maxConnections: 2, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'wagate-test' });
    const sessions = [await pool.reserve(), await pool.reserve()];
    const throughPooler = roundRobinPooler(sessions);
    const probe = { version: 9101, name: '9101_test.sql', sql: 'CREATE TABLE pooled_probe (id integer)', checksum: 'test-9101' };
    await expect(migrate(throughPooler, [...readMigrations(), probe])).rejects.toThrow(
      'the migration lock is not held by the session this statement ran on: a pooler in transaction mode (PgBouncer) sends statements to other server connections, where migrations are neither kept apart nor bounded in how long they wait for locks (the lock it took was given back)');
    // Given back on the server connection that took it, before this test's sessions go back to the pool.
    expect(await db.sql`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 7412001
                          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).toEqual([]);
    sessions.forEach((session) => session.release());
    await pool.end();
    expect(await db.sql`SELECT to_regclass('pooled_probe') AS found`).toEqual([{ found: null }]);
  });
});

describe('migrate behind a pooler in transaction mode, with nothing to apply', () => {
  it('refuses all the same, and leaves no lock behind', async () => {
    await migrate(db.sql);
    expect(await migrate(db.sql)).toEqual([]);
    // A pooler that sends each statement to the next free server connection.
    const pool = createDatabase({ url: db.url, maxConnections: 2, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'wagate-test' });
    const sessions = [await pool.reserve(), await pool.reserve()];
    const throughPooler = roundRobinPooler(sessions);
    try {
      // Up to date: the run used to find nothing pending, never check where its lock was, and exit 0.
      await expect(migrate(throughPooler, readMigrations())).rejects.toThrow('the migration lock is not held by the session this statement ran on');
      expect(await db.sql`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 7412001
                            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).toEqual([]);
    } finally {
      sessions.forEach((session) => session.release());
      await pool.end();
    }
  });
});

describe('migrate whose connection is lost as it gives its lock back', () => {
  it('succeeds, since the session took the lock with it', async () => {
    await migrate(db.sql);
    // The session is ended just as the unlock is sent: the unlock fails, and the lock is gone with the session.
    const original = db.sql.reserve.bind(db.sql);
    const losing = Object.assign((...args: unknown[]) => (db.sql as unknown as (...a: unknown[]) => unknown)(...args), db.sql, {
      reserve: async () => {
        const session = await original();
        const pid = (await session`SELECT pg_backend_pid() AS pid`)[0]!.pid as number;
        return new Proxy(session, {
          apply: (target, that, args: unknown[]) => {
            const text = Array.isArray(args[0]) ? (args[0] as string[]).join('') : '';
            if (!text.includes('pg_advisory_unlock')) return Reflect.apply(target as unknown as (...a: unknown[]) => unknown, that, args);
            return db.sql`SELECT pg_terminate_backend(${pid})`.then(() => Reflect.apply(target as unknown as (...a: unknown[]) => unknown, that, args));
          },
        });
      },
    }) as unknown as Sql;
    await expect(migrate(losing, readMigrations())).resolves.toEqual([]);
    expect(await db.sql`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 7412001
                          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).toEqual([]);
  });
});

describe('migrate whose unlock fails while its session lives on', () => {
  it('fails, naming the server connection that may still hold the lock', async () => {
    await migrate(db.sql);
    let pid = 0;
    const original = db.sql.reserve.bind(db.sql);
    const refusing = Object.assign((...args: unknown[]) => (db.sql as unknown as (...a: unknown[]) => unknown)(...args), db.sql, {
      reserve: async () => {
        const session = await original();
        pid = (await session`SELECT pg_backend_pid() AS pid`)[0]!.pid as number;
        return new Proxy(session, {
          apply: (target, that, args: unknown[]) => {
            const text = Array.isArray(args[0]) ? (args[0] as string[]).join('') : '';
            if (text.includes('pg_advisory_unlock')) return Promise.reject(Object.assign(new Error('server conn crashed?'), { code: '08P01' }));
            return Reflect.apply(target as unknown as (...a: unknown[]) => unknown, that, args);
          },
        });
      },
    }) as unknown as Sql;
    try {
      await expect(migrate(refusing, readMigrations())).rejects.toThrow(/the migration lock could not be given back: server connection \d+ may still hold it/);
      expect(await db.sql`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 7412001`).toEqual([{ pid }]);
    } finally {
      // Ends the session that holds it; run on that very session (back in the pool), it ends itself, as well.
      await db.sql`SELECT pg_terminate_backend(${pid})`.catch(() => undefined);
    }
  });
});

describe('migrate behind a pooler that sends a statement of its own to another server connection', () => {
  it('bounds each migration\'s wait for locks all the same: its lock timeout travels in the DDL\'s own transaction', async () => {
    // Session settings sent on their own go elsewhere; everything else to the session that holds the lock.
    const pool = createDatabase({ url: db.url, maxConnections: 2, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'wagate-test' });
    const [main, other] = [await pool.reserve(), await pool.reserve()];
    const route = (query: unknown) => (typeof query === 'string' && /^\s*(SET|RESET)\b/i.test(query) ? other : main);
    const pooled = new Proxy(function pooled() {}, {
      apply: (_target, _this, args: unknown[]) => (main as unknown as (...a: unknown[]) => unknown)(...args),
      get: (_target, property) => {
        if (property === 'then') return undefined;
        if (property === 'release') return () => undefined;
        return (...args: unknown[]) => (route(args[0]) as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[property]!(...args);
      },
    });
    const throughPooler = { reserve: async () => pooled } as unknown as typeof db.sql;
    const probe = { version: 9102, name: '9102_test.sql', checksum: 'test-9102',
      sql: "DO $$ BEGIN IF current_setting('lock_timeout') = '0' THEN RAISE EXCEPTION 'no lock timeout inside the migration'; END IF; END $$" };
    try {
      expect(await migrate(throughPooler, [...readMigrations(), probe])).toContain('9102_test.sql');
    } finally {
      main.release();
      other.release();
      await pool.end();
    }
  });
});

describe('migrate while another session holds the migration lock', () => {
  it('says who holds it while it waits, and goes ahead once it is released', async () => {
    const holderPool = createDatabase({ url: db.url, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 0, applicationName: 'left-from-a-killed-run' });
    const holder = await holderPool.reserve();
    const [row] = await holder<{ pid: number }[]>`SELECT pg_backend_pid() AS pid, pg_advisory_lock(7412001)`;
    const pid = row!.pid;
    const told: { pid: number; applicationName: string }[] = [];
    const migrating = migrate(db.sql, readMigrations(), {
      onLockHeld: (who) => told.push({ pid: who.pid, applicationName: who.applicationName }),
      lockHolderReportMs: { first: 0, every: 60_000 },
    });
    await waitFor('the waiting run to name the holder', () => told.length > 0);
    expect(told).toEqual([{ pid, applicationName: 'left-from-a-killed-run' }]);
    await holder`SELECT pg_advisory_unlock(7412001)`;
    holder.release();
    await expect(migrating).resolves.toEqual([]);
    await holderPool.end();
  });
});

describe('migrate as a role that may not create the extensions', () => {
  it('says what to do: have a superuser create pg_trgm and unaccent once', async () => {
    const fresh = await createTestDatabase({ migrate: false });
    const role = `${fresh.name}_owner`;
    // The role may create tables in the schema but not extensions in the database, as on a
    // managed Postgres where the application's role was given a schema only.
    await fresh.sql.unsafe(`CREATE ROLE ${role} LOGIN`);
    await fresh.sql.unsafe(`REVOKE CREATE ON DATABASE ${fresh.name} FROM PUBLIC`);
    await fresh.sql.unsafe(`GRANT CREATE, USAGE ON SCHEMA public TO ${role}`);
    const url = new URL(fresh.url);
    url.username = role;
    const asRole = createDatabase({ url: url.toString(), maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 30000, applicationName: 'wagate-test' });
    try {
      await expect(migrate(asRole)).rejects.toThrow(/migration 002_orders\.sql failed: permission denied to create extension "pg_trgm".*have a superuser run CREATE EXTENSION pg_trgm; CREATE EXTENSION unaccent;/);
    } finally {
      await asRole.end({ timeout: 1 });
      await fresh.drop();
      const admin = createDatabase({ url: ADMIN_DATABASE_URL, maxConnections: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 30000, applicationName: 'wagate-test' });
      await admin.unsafe(`DROP ROLE IF EXISTS ${role}`);
      await admin.end({ timeout: 1 });
    }
  });
});
