import amqp from 'amqplib';
import { randomUUID } from 'node:crypto';
import { createDatabase, transaction } from '../../src/db/client';
import { classifyPostgresError, explainPostgresFailure, isDatabaseUnavailable, isLoginRefused } from '../../src/db/postgres-errors';
import { ConfigError, ERROR_CODES, exitStatusOf, PermanentError, RetryableError, UsageError, WagateError } from '../../src/errors';
import { asBrokerError, classifyAmqpError } from '../../src/queue/amqp-errors';
import { TEST_AMQP_URL } from '../support/amqp';
import { createTestDatabase, holdInTransaction, withPort, type TestDatabase } from '../support/database';
import { isDatabaseDown, isSlowStatement } from '../../src/worker/delivery';

/** A port nothing listens on: connecting to it is refused at once. */
const CLOSED_PORT = 1;

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

const failureOf = (work: Promise<unknown>) => work.then(() => null, (error: unknown) => error);

describe('Postgres failures, classified in db/postgres-errors', () => {
  it('calls a refused connection unavailable', async () => {
    const unreachable = createDatabase({ url: withPort(db.url, CLOSED_PORT), maxConnections: 1, connectTimeoutSeconds: 2, statementTimeoutMs: 1000, applicationName: 'wagate-test' });
    const error = await failureOf(unreachable`SELECT 1`);
    await unreachable.end({ timeout: 0 });
    expect(classifyPostgresError(error)).toBe('DATABASE_UNAVAILABLE');
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('calls a cancelled statement a statement timeout, which still counts as unavailable for a request', async () => {
    const error = await failureOf(transaction(db.sql, async (tx) => {
      await tx`SET LOCAL statement_timeout = 10`;
      await tx`SELECT pg_sleep(1)`;
    }));
    expect(classifyPostgresError(error)).toBe('DATABASE_STATEMENT_TIMEOUT');
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['08P01', 'server conn crashed?'], // PgBouncer, Postgres gone under it
    ['08P01', 'query_wait_timeout'], // PgBouncer, no server connection in time
    ['08006', 'connection failure'],
    ['53300', 'too many connections'],
  ])('calls SQLSTATE %s (%s) unavailable, as a pooler in front of Postgres sends it', async (sqlstate, message) => {
    const error = await failureOf(db.sql.unsafe(`DO $$ BEGIN RAISE EXCEPTION '${message}' USING ERRCODE = '${sqlstate}'; END $$`));
    expect((error as { code: string }).code).toBe(sqlstate);
    expect(classifyPostgresError(error)).toBe('DATABASE_UNAVAILABLE');
  });

  it('calls a statement past its own temp-file limit unavailable for a request, but not the database down for a worker (which splits its batch and spends its tries)', async () => {
    const error = await failureOf(transaction(db.sql, async (tx) => {
      await tx`SET LOCAL work_mem = '64kB'`;
      await tx`SET LOCAL temp_file_limit = '64kB'`;
      await tx`SELECT g FROM generate_series(1, 200000) AS g ORDER BY g DESC`;
    }));
    expect((error as { code: string }).code).toBe('53400');
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(isDatabaseDown(error)).toBe(false);
    // A server out of connections, or of memory, is down, for the worker too.
    for (const sqlstate of ['53300', '53200']) {
      expect([sqlstate, isDatabaseDown(await failureOf(db.sql.unsafe(`DO $$ BEGIN RAISE EXCEPTION 'out of resources' USING ERRCODE = '${sqlstate}'; END $$`)))]).toEqual([sqlstate, true]);
    }
  });

  it.each(['no such database: shop', 'unsupported startup parameter: search_path'])(
    'calls PgBouncer\'s 08P01 "%s" a refused login, which no retry fixes, and says what to check',
    async (message) => {
      const error = await failureOf(db.sql.unsafe(`DO $$ BEGIN RAISE EXCEPTION '${message}' USING ERRCODE = '08P01'; END $$`));
      expect(classifyPostgresError(error)).toBeNull();
      expect(isLoginRefused(error)).toBe(true);
      expect(explainPostgresFailure(error, 'postgres://wagate:secret@pgbouncer:6432/shop')).toBe(
        `PgBouncer refused the connection: check the database and user in DATABASE_URL against PgBouncer's [databases] section, and the startup parameters it takes (ignore_startup_parameters) (server wagate@pgbouncer:6432/shop: ${message})`,
      );
    },
  );

  it('calls a statement timeout and a lock timeout slow, which a worker batch splits only once, and neither a dead database nor a bug slow', async () => {
    const timedOut = await failureOf(transaction(db.sql, async (tx) => {
      await tx`SET LOCAL statement_timeout = 10`;
      await tx`SELECT pg_sleep(1)`;
    }));
    await db.sql`CREATE TABLE IF NOT EXISTS held_row (id int PRIMARY KEY)`;
    await db.sql`INSERT INTO held_row VALUES (1) ON CONFLICT DO NOTHING`;
    const holder = holdInTransaction(db.sql, (tx) => tx`SELECT 1 FROM held_row WHERE id = 1 FOR UPDATE`);
    await holder.held;
    let lockTimedOut: unknown;
    try {
      lockTimedOut = await failureOf(transaction(db.sql, async (tx) => {
        await tx`SET LOCAL lock_timeout = 10`;
        await tx`SELECT 1 FROM held_row WHERE id = 1 FOR UPDATE`;
      }));
    } finally {
      await holder.release();
    }
    expect([isSlowStatement(timedOut), isSlowStatement(lockTimedOut)]).toEqual([true, true]);
    const unreachable = createDatabase({ url: withPort(db.url, CLOSED_PORT), maxConnections: 1, connectTimeoutSeconds: 2, statementTimeoutMs: 1000, applicationName: 'wagate-test' });
    const down = await failureOf(unreachable`SELECT 1`);
    await unreachable.end({ timeout: 0 });
    expect([isSlowStatement(down), isSlowStatement(await failureOf(db.sql`SELECT * FROM no_such_table`))]).toEqual([false, false]);
  });

  it('leaves a bug in our SQL unclassified: no retry fixes it', async () => {
    const error = await failureOf(db.sql`SELECT * FROM no_such_table`);
    expect(classifyPostgresError(error)).toBeNull();
    expect(isDatabaseUnavailable(error)).toBe(false);
    expect(classifyPostgresError(new Error('no code'))).toBeNull();
    expect(classifyPostgresError(null)).toBeNull();
  });
});

describe('AMQP failures, classified in queue/amqp-errors', () => {
  it('calls a refused connection and a closed channel the broker being away', async () => {
    const refused = await failureOf(amqp.connect(withPort(TEST_AMQP_URL, CLOSED_PORT)));
    expect(classifyAmqpError(refused)).toBe('BROKER_UNAVAILABLE');
    const connection = await amqp.connect(TEST_AMQP_URL);
    const channel = await connection.createChannel();
    await channel.close();
    const closed = await failureOf(Promise.resolve().then(() => channel.checkQueue('anything')));
    await connection.close();
    expect(classifyAmqpError(closed)).toBe('BROKER_UNAVAILABLE');
    expect(asBrokerError(closed)).toMatchObject({ code: 'BROKER_UNAVAILABLE', retryable: true });
  });

  it('leaves a refused operation (a queue that does not exist) unclassified and unchanged', async () => {
    const connection = await amqp.connect(TEST_AMQP_URL);
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    const missing = await failureOf(channel.checkQueue(`wagate-test-missing-${randomUUID()}`));
    await connection.close();
    expect(classifyAmqpError(missing)).toBeNull();
    expect(asBrokerError(missing)).toBe(missing);
  });
});

describe('WagateError codes', () => {
  it('give each family member its code, and each code its retry, exit and HTTP meaning', () => {
    expect([new UsageError('x'), new ConfigError('x'), new RetryableError('x'), new PermanentError('x')].map((error) => error.code)).toEqual([
      'USAGE_INVALID',
      'CONFIG_INVALID',
      'RETRYABLE',
      'PERMANENT',
    ]);
    expect(new WagateError('LEDGER_TIMEOUT', 'x')).toMatchObject({ retryable: true, exitStatus: 1, httpStatus: 503 });
    expect(new PermanentError('x').retryable).toBe(false);
    expect(Object.values(ERROR_CODES).every((meaning) => meaning.httpStatus >= 400 && meaning.exitStatus > 0)).toBe(true);
  });

  it('map a command line to correct to exit status 2, and any other failure to 1', () => {
    expect(exitStatusOf(new UsageError('x'))).toBe(2);
    expect(exitStatusOf(new ConfigError('x'))).toBe(1);
    expect(exitStatusOf(new Error('not ours'))).toBe(1);
  });
});
