import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createDatabase, type Sql } from '../../src/db/client';
import { migrate } from '../../src/db/migrate';

export const ADMIN_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  url: string;
  sql: Sql;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database for one test file, dropped afterwards. `cLocale`: created with the
 * C locale, as CloudNativePG makes one unless told otherwise, and initdb without a locale in its environment.
 */
export async function createTestDatabase(options: { migrate?: boolean; cLocale?: boolean } = {}): Promise<TestDatabase> {
  const name = `wagate_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => undefined });
  const locale = options.cLocale ? " TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'" : '';
  await admin.unsafe(`CREATE DATABASE ${name}${locale}`);
  await admin.end();
  const url = withDatabase(ADMIN_DATABASE_URL, name);
  const sql = createDatabase({ url, maxConnections: 4, connectTimeoutSeconds: 5, statementTimeoutMs: 30000, applicationName: 'wagate-test' });
  if (options.migrate !== false) await migrate(sql);
  return {
    name,
    url,
    sql,
    async drop() {
      await sql.end({ timeout: 1 });
      const cleanup = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => undefined });
      await cleanup.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export function withPort(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.port = String(port);
  return parsed.toString();
}

/**
 * Runs a statement in a transaction held open until released, so that the locks it takes stay
 * taken meanwhile (a member row, to stall a worker's heartbeats; a table, to hold a write).
 * `held` resolves once the statement has run.
 */
export function holdInTransaction(sql: Sql, statement: (tx: Sql) => PromiseLike<unknown>): { held: Promise<void>; release(): Promise<void> } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held!: () => void;
  let failed!: (error: unknown) => void;
  const holding = new Promise<void>((resolve, reject) => {
    held = resolve;
    failed = reject;
  });
  const transaction = sql.begin(async (tx) => {
    await statement(tx as unknown as Sql);
    held();
    await released;
  });
  // A statement that failed is said where the test waits for the hold, not left to hang it
  // (and only there: a test that does not wait for the hold hears it from release()).
  transaction.catch(failed);
  holding.catch(() => undefined);
  return {
    held: holding,
    async release() {
      release();
      await transaction;
    },
  };
}

/** The hold's statement locked a row it did not return (see holdQueuedMessages). */
class StrayRowLock extends Error {}

/** How many times holdQueuedMessages takes the lock again when it caught a row it did not mean to. */
const QUEUED_HOLD_ATTEMPTS = 50;

/**
 * Holds the rows of these messages that are still 'queued' locked until released, so that a
 * worker's claim of any of them waits. Only those: a row that a claim made 'processing' while the
 * lock statement ran is locked too, though the statement does not return it. READ COMMITTED
 * locks the newest version of a row changed under it before it checks the row again, and keeps
 * that lock when the row no longer matches. The decision write of that message would then wait
 * for the hold, keeping its shard's record share-locked and every take of the shard waiting.
 * A hold that caught such a row (one not queued whose locker is this transaction) is rolled
 * back and taken again.
 */
export async function holdQueuedMessages(sql: Sql, messageIds: string[]): Promise<{ release(): Promise<void> }> {
  for (let attempt = 1; ; attempt += 1) {
    const hold = holdInTransaction(sql, async (tx) => {
      await tx`SELECT 1 FROM webhook_messages WHERE message_id = ANY(${messageIds}) AND status = 'queued' FOR UPDATE`;
      // A row locked by one transaction alone names it in xmax, as a 32-bit id.
      const [row] = await tx<{ stray: number }[]>`
        SELECT count(*)::integer AS stray FROM webhook_messages
        WHERE message_id = ANY(${messageIds}) AND status <> 'queued'
          AND xmax::text::bigint = pg_current_xact_id()::text::bigint % 4294967296`;
      if (row!.stray > 0) throw new StrayRowLock(`the hold locked ${row!.stray} message rows that are no longer queued`);
    });
    try {
      await hold.held;
      return hold;
    } catch (error) {
      if (!(error instanceof StrayRowLock) || attempt === QUEUED_HOLD_ATTEMPTS) throw error;
    }
  }
}

/**
 * Stalls a worker's heartbeats, as a Postgres out of its reach would, until released: its member
 * row is held share-locked, which the heartbeat's update waits for. A take of its shards locks
 * the row in share mode too, so it still goes through once the heartbeat has expired.
 */
export function stallHeartbeats(sql: Sql, queuePrefix: string, memberId: string): { held: Promise<void>; release(): Promise<void> } {
  return holdInTransaction(sql, (tx) => tx`
    SELECT 1 FROM worker_members WHERE queue_prefix = ${queuePrefix} AND member_id = ${memberId} FOR SHARE`);
}

/**
 * One connection whose every statement's plan Postgres sends back (auto_explain, as notices)
 * into `plans`; with `analyze`, with the rows and loops each node really took. One
 * connection, so that the session settings hold for every statement.
 */
export async function explainingClient(url: string, plans: string[], analyze = false): Promise<Sql> {
  const sql = postgres(url, {
    max: 1,
    onnotice: (notice) => {
      if (String(notice.message).includes('plan:')) plans.push(String(notice.message));
    },
  }) as unknown as Sql;
  await sql`LOAD 'auto_explain'`;
  await sql`SET auto_explain.log_min_duration = 0`;
  await sql`SET auto_explain.log_level = 'notice'`;
  if (analyze) await sql`SET auto_explain.log_analyze = on`;
  return sql;
}
