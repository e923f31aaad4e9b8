import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Sql } from './client';
import { WagateError } from '../errors';
import { isLockTimeout } from './postgres-errors';

export const MIGRATIONS_DIR = path.join(__dirname, '..', '..', 'migrations');
/** Arbitrary constant shared by every wagate migrator, so concurrent runs queue behind one another. */
const MIGRATION_LOCK_KEY = 7_412_001;

/**
 * Checksums of earlier texts of applied migrations that build the same schema as today's, so
 * that a database which applied one is not taken for one whose migration was changed: 014
 * was edited afterwards in its comments only, 005 and 007 in how they build the same objects
 * (005's constraint was validated at once, 007's index built without CONCURRENTLY), 034 in
 * looking its sequence up once a call instead of once a message (the same ids), and 011 in
 * building its orders index concurrently and leaving the replies' index to 037 (which records
 * it, already built, on a database that ran the earlier text). Never add a text that builds
 * anything else: that takes a new migration.
 */
const EQUIVALENT_EARLIER_CHECKSUMS: Readonly<Record<number, readonly string[]>> = {
  5: ['3212795de60f4ed273c7e772d045a91969c978f38abbb3e77284779325dd7807'],
  7: ['6029c3d97250919fd01c5d536f1504b3c31788651005d5f5df020366e8872184'],
  11: ['960b36c3feb97720dee6dbf25c6a7872b3594649c441b0bc7c80dc733c095701'],
  14: ['a23b1114003a627a3dc485868bc53e2fdce6dd1c756ae0a5ab8b0c527272717c'],
  34: ['501ad01b68cbc156dae5ed3d78e57915c458639ff7145d11c8789fd37eb1dbab'],
};

function appliedAsShipped(migration: Migration, appliedChecksum: string): boolean {
  return appliedChecksum === migration.checksum || (EQUIVALENT_EARLIER_CHECKSUMS[migration.version] ?? []).includes(appliedChecksum);
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d+_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const sql = readFileSync(path.join(dir, file), 'utf8');
      return {
        version: Number(file.split('_')[0]),
        name: file,
        sql,
        // Of the text with LF line ends: a checkout that wrote CRLF (git's autocrlf on Windows)
        // would otherwise find every applied migration changed, and refuse to migrate.
        checksum: createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex'),
      };
    });
}

export interface MigrateOptions {
  /**
   * How long one DDL statement may wait for a table lock. A lock request waiting behind a
   * long transaction makes every later writer of that table wait behind it too, so ingest
   * would stall; with this bound the DDL gives up, lets the writers through, and retries.
   */
  lockTimeoutMs?: number;
  /** Tries per migration before giving up with an error that says why. */
  lockAttempts?: number;
  /** Told about each try that timed out waiting for a lock. */
  onLockTimeout?(migration: string, attempt: number): void;
  /**
   * Told who holds the migration lock while another run waits for it: after a few seconds,
   * then every minute. A run killed while its statement waits keeps its session, and so the
   * lock, until that statement ends; the holder's pid is what an operator ends it by.
   */
  onLockHeld?(holder: MigrationLockHolder, waitedMs: number): void;
  /** When the first onLockHeld comes (5 s), and how far apart the next ones are (60 s). */
  lockHolderReportMs?: { first: number; every: number };
}

export interface MigrationLockHolder {
  pid: number;
  applicationName: string;
  clientAddress: string | null;
  state: string | null;
  /** Seconds since its current transaction (or statement) began. */
  busySeconds: number | null;
  /**
   * The index it is building concurrently, if that is what it runs: a run killed mid-build (a
   * Job past its deadline) leaves its session building, and the build finishes on its own.
   * Ended, the build is lost and starts again from nothing.
   */
  building: string | null;
}

/**
 * One try's wait for its table locks: every writer of the table queues behind the DDL's
 * request for as long, so it is what a try may add to the ingest's acks (a 2 s wait held
 * every commit past the ack latency alert for most of a minute behind a long transaction).
 */
const DEFAULT_LOCK_TIMEOUT_MS = 200;
/** Tries per migration: with the pauses below, about 90 s before giving up, saying why. */
const DEFAULT_LOCK_ATTEMPTS = 20;
/** The pause after a try that timed out, doubled each time up to the longest: the writers get through while a long transaction ends. */
const FIRST_LOCK_PAUSE_MS = 500;
const LONGEST_LOCK_PAUSE_MS = 5000;

/** The pause after the `attempt`-th try (from 1) timed out. */
export function lockRetryPauseMs(attempt: number): number {
  return Math.min(LONGEST_LOCK_PAUSE_MS, FIRST_LOCK_PAUSE_MS * 2 ** (attempt - 1));
}

/**
 * Applies pending migrations, each in its own transaction, under a session advisory lock.
 * Returns the names applied by this call; an already-migrated database yields [].
 */
export async function migrate(sql: Sql, migrations = readMigrations(), options: MigrateOptions = {}): Promise<string[]> {
  const connection = (await sql.reserve()) as unknown as Sql & { release(): void };
  // The session holding the migration lock, until it is given back.
  const lock: HeldLock = { session: null };
  let done: string[];
  try {
    done = await applyPending(connection, lock, migrations, options);
  } catch (error) {
    await letGo(connection, lock, sql);
    throw error;
  }
  const lockSession = lock.session;
  if (!(await letGo(connection, lock, sql))) {
    throw new WagateError('MIGRATION_FAILED',
      `the migrations ran, but the migration lock could not be given back: server connection ${lockSession} may still hold it, and the next run would wait for it; if SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = ${MIGRATION_LOCK_KEY} AND objsubid = 1 names it, end it with SELECT pg_terminate_backend(${lockSession}), and run wagate migrate on a direct connection to PostgreSQL`);
  }
  return done;
}

async function applyPending(connection: Sql, lock: HeldLock, migrations: Migration[], options: MigrateOptions): Promise<string[]> {
  lock.session = await takeMigrationLock(connection, options);
  // At once, not only before a pending migration: behind a pooler, a run with nothing to
  // apply left its lock on a server connection it could not reach again, and exited 0.
  await refuseTransactionPooling(connection, lock);
  await connection`
    CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`;
  const applied = new Map(
    (await connection<{ version: number; checksum: string; name: string }[]>`
      SELECT version, checksum, name FROM schema_migrations`).map((row) => [row.version, row]),
  );
  const done: string[] = [];
  for (const migration of migrations) {
    const previous = applied.get(migration.version);
    if (previous) {
      if (!appliedAsShipped(migration, previous.checksum)) {
        throw new WagateError('MIGRATION_FAILED', `migration ${migration.name} was changed after it was applied (checksum differs); add a new migration instead`);
      }
      continue;
    }
    await refuseTransactionPooling(connection, lock);
    await applyWithLockRetries(connection, migration, options);
    done.push(migration.name);
  }
  return done;
}

/**
 * Gives the lock back and the connection to the caller's pool, with no lock_timeout left on it.
 * False when the lock may still be held on a server connection the unlock could not reach. An
 * unlock that failed (the connection lost) is judged by what Postgres shows through the pool: a
 * session that ended took the lock with it; behind a pooler, it may live on, lock and all.
 */
async function letGo(connection: Sql & { release(): void }, lock: HeldLock, pool: Sql): Promise<boolean> {
  const session = lock.session;
  await connection.unsafe('RESET lock_timeout').catch(() => undefined);
  const given = await giveBackLock(connection, lock).catch(async () => {
    try {
      const held = await pool`
        SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = ${session} AND classid = 0 AND objid = ${MIGRATION_LOCK_KEY} AND objsubid = 1`;
      return held.length === 0;
    } catch {
      return false;
    }
  });
  connection.release();
  return given;
}

/**
 * The longest a try's lock wait may grow to get past an autovacuum: every ingest commit on the
 * table waits behind the lock request, and past a second or so the acks of those moments are
 * late for the providers.
 */
const MAX_VACUUM_LOCK_WAIT_MS = 1_500;

/**
 * The next try's lock wait: past Postgres's deadlock_timeout while an autovacuum holds a table
 * the migration changes. A lock request cancels an autovacuum that blocks it only at its
 * deadlock check, deadlock_timeout (1 s by default) into its wait, so a shorter wait never gets
 * through one that is vacuuming the table (for minutes, on a large one). Not past
 * MAX_VACUUM_LOCK_WAIT_MS: with a longer deadlock_timeout the tries keep their base wait.
 */
export function lockTimeoutForTry(baseMs: number, autovacuumRunning: boolean, deadlockTimeoutMs: number): number {
  const pastDeadlockCheck = deadlockTimeoutMs + 200;
  return autovacuumRunning && pastDeadlockCheck <= MAX_VACUUM_LOCK_WAIT_MS ? Math.max(baseMs, pastDeadlockCheck) : baseMs;
}

/** SQL without its `--` comments, which may quote statements. */
function withoutComments(sql: string): string {
  return sql.replace(/--.*$/gm, '');
}

/**
 * The tables a migration's statements lock for a change: those its ALTER TABLE and CREATE INDEX
 * name. Empty, meaning any table, where it may lock others in ways not read here (a foreign
 * key, a trigger, an index dropped, LOCK, TRUNCATE) or names one in quotes.
 */
export function tablesChanged(sql: string): string[] {
  const statements = withoutComments(sql);
  if (/\b(?:REFERENCES|TRIGGER|DROP\s+INDEX|LOCK|TRUNCATE)\b|"/i.test(statements)) return [];
  const named = [...statements.matchAll(/\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.]+)|\bCREATE\s+(?:UNIQUE\s+)?INDEX\b[^;]*?\bON\s+(?:ONLY\s+)?([\w.]+)/gi)]
    .map((match) => (match[1] ?? match[2])!);
  return [...new Set(named)];
}

/**
 * Whether a vacuum holds a lock on one of the tables the migration changes (on any table, when
 * the migration names none, or one that does not exist yet: the table a file creates is gone
 * again after each try's rollback, and another it references may be the one being vacuumed),
 * read from the vacuums' progress and pg_locks, which every role may
 * see: pg_stat_activity hides an autovacuum worker's backend_type from a role without
 * pg_read_all_stats, as a migrating role usually is. A vacuum of another table does not stand in
 * the migration's way, and waiting longer for it only held the ingest's commits longer. A manual
 * VACUUM counts too; it costs a try of a second.
 */
async function autovacuumRunning(connection: Sql, tables: readonly string[]): Promise<{ running: boolean; deadlockTimeoutMs: number }> {
  const [row] = await connection<{ running: boolean; deadlockTimeoutMs: number }[]>`
    SELECT EXISTS (
             SELECT 1 FROM pg_stat_progress_vacuum v
             WHERE v.datname = current_database()
               AND (cardinality(${tables}::text[]) = 0
                 OR EXISTS (SELECT 1 FROM unnest(${tables}::text[]) AS t WHERE to_regclass(t) IS NULL)
                 OR EXISTS (
                 SELECT 1 FROM pg_locks l
                 WHERE l.pid = v.pid AND l.locktype = 'relation' AND l.database = v.datid
                   AND l.relation = ANY(ARRAY(SELECT to_regclass(t)::oid FROM unnest(${tables}::text[]) AS t))))
           ) AS running,
           (SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout') AS "deadlockTimeoutMs"`;
  return row!;
}

async function applyWithLockRetries(connection: Sql, migration: Migration, options: MigrateOptions): Promise<void> {
  const attempts = options.lockAttempts ?? DEFAULT_LOCK_ATTEMPTS;
  const baseMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  let lockTimeoutMs = baseMs;
  let vacuumSeen = false;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await applyOnce(connection, migration, lockTimeoutMs);
    } catch (error) {
      // The lock_timeout fired; the transaction rolled back whole.
      const lockTimeout = isLockTimeout(error);
      if (lockTimeout && attempt < attempts) {
        options.onLockTimeout?.(migration.name, attempt);
        await new Promise((resolve) => setTimeout(resolve, lockRetryPauseMs(attempt)));
        const vacuum = await autovacuumRunning(connection, tablesChanged(migration.sql));
        vacuumSeen = vacuum.running;
        lockTimeoutMs = lockTimeoutForTry(baseMs, vacuum.running, vacuum.deadlockTimeoutMs);
        continue;
      }
      const holder = vacuumSeen
        ? 'a vacuum of a table it changes, or a long transaction, holds them: a manual VACUUM, one against wraparound, or an autovacuum past a deadlock_timeout above 1.3 s is never cancelled by a 200 ms try; let it end, or cancel it (pg_cancel_backend), and run migrate again'
        : 'a long transaction holds them';
      const why = lockTimeout ? `could not take its locks in ${attempts} tries (${holder})` : (error as Error).message;
      const remedy = migrationRemedy(error);
      throw new WagateError('MIGRATION_FAILED', `migration ${migration.name} failed: ${why}${remedy ? `; ${remedy}` : ''}`, { cause: error });
    }
  }
}

async function applyOnce(connection: Sql, migration: Migration, lockTimeoutMs: number): Promise<void> {
  const record = `INSERT INTO schema_migrations (version, name, checksum)
    VALUES (${migration.version}, '${migration.name}', '${migration.checksum}')`;
  if (runsOutsideTransaction(migration)) {
    // CREATE INDEX CONCURRENTLY waits for older transactions to end but lets writes through
    // meanwhile, so it runs without a lock timeout. A build that died left an invalid index
    // behind, which IF NOT EXISTS would keep forever: drop it and build again.
    await connection.unsafe('SET lock_timeout = 0');
    const indexes = concurrentIndexNames(withoutComments(migration.sql));
    for (const index of indexes) await dropIfInvalid(connection, index);
    // A run that died after the build but before recording it left the index valid: without
    // IF NOT EXISTS the build would fail on it at every run from then on. Record it instead.
    const built = indexes.length > 0 && (await Promise.all(indexes.map((index) => indexValidity(connection, index)))).every((valid) => valid === true);
    if (!built) await connection.unsafe(migration.sql);
    await connection.unsafe(record);
    return;
  }
  // SET LOCAL, in the same query as the DDL: a setting sent on its own could reach another
  // server connection than the transaction behind a pooler, leaving the DDL to wait without limit.
  await connection.unsafe(`BEGIN; SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}; ${migration.sql}\n; ${record}; COMMIT;`).catch(async (error) => {
    await connection.unsafe('ROLLBACK').catch(() => undefined);
    throw error;
  });
}

/**
 * What to do about a migration's failure, where Postgres's own text does not say: the
 * extensions that matching needs (pg_trgm, unaccent) missing from the server, or the role
 * lacking the right to create them. Undefined for any other failure.
 */
export function migrationRemedy(error: unknown): string | undefined {
  const { code, message } = error as { code?: string; message?: string };
  if (!/extension/i.test(message ?? '')) return undefined;
  // 58P01: no control file; 0A000: "extension is not available" (newer servers).
  if (code === '58P01' || code === '0A000') {
    return 'install PostgreSQL\'s contrib extensions pg_trgm and unaccent on the server (Debian: apt-get install postgresql-contrib; a managed service: allow both extensions), then run wagate migrate again';
  }
  if (code === '42501') {
    return 'the role may not create the extensions: have a superuser run CREATE EXTENSION pg_trgm; CREATE EXTENSION unaccent; in this database once, then run wagate migrate again';
  }
  return undefined;
}

/**
 * The indexes a no-transaction migration builds with CREATE INDEX CONCURRENTLY. Each must be
 * named: a build that dies leaves its index invalid, and only a name lets the rerun find it and
 * drop it (an unnamed one would stay, updated by every write, beside a second build).
 */
export function concurrentIndexNames(sql: string): string[] {
  const pattern = /CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?("?[\w.]+"?)/gi;
  return [...sql.matchAll(pattern)].map((match) => {
    if (/^on$/i.test(match[1]!)) throw new Error(`a concurrent index build without a name (${match[0]}…): name the index, so that a rerun can drop it if a build dies`);
    return match[1]!;
  });
}

/** Whether the index is valid; undefined when there is no such index. */
async function indexValidity(connection: Sql, index: string): Promise<boolean | undefined> {
  const [row] = await connection<{ valid: boolean }[]>`
    SELECT i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = to_regclass(${index})`;
  return row?.valid;
}

async function dropIfInvalid(connection: Sql, index: string): Promise<void> {
  if ((await indexValidity(connection, index)) === false) await connection.unsafe(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
}

/**
 * A migration whose first line is this marker runs on its own, outside a transaction, as
 * CREATE INDEX CONCURRENTLY must. It must hold a single statement (several statements in one
 * query run as one implicit transaction).
 */
const NO_TRANSACTION_MARKER = '-- wagate: no transaction';

function runsOutsideTransaction(migration: Migration): boolean {
  return migration.sql.startsWith(NO_TRANSACTION_MARKER);
}

/**
 * The session that took the migration lock is the one each migration runs on. Behind a pooler
 * in transaction mode (PgBouncer's usual setting) each statement may go to another server
 * connection: the lock then stays on one that the pooler hands to ingest and workers, two runs
 * are no longer kept apart, and the unlock reaches a session that holds nothing. Asked before
 * each migration, since a pooler under little load often keeps one client on one server
 * connection for a while.
 */
async function refuseTransactionPooling(connection: Sql, lock: HeldLock): Promise<void> {
  const lockSession = lock.session!;
  const [row] = await connection<{ held: boolean }[]>`
    SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
      AND classid = 0 AND objid = ${MIGRATION_LOCK_KEY} AND objsubid = 1) AS held`;
  if (row!.held) return;
  const given = (await giveBackLock(connection, lock)) ? 'the lock it took was given back' : `the lock it took is still held by server connection ${lockSession}: end it with SELECT pg_terminate_backend(${lockSession}), or the next run waits for it`;
  throw new WagateError('MIGRATION_FAILED',
    `the migration lock is not held by the session this statement ran on: a pooler in transaction mode (PgBouncer) sends statements to other server connections, where migrations are neither kept apart nor bounded in how long they wait for locks (${given}). Run wagate migrate on a direct connection to PostgreSQL (the chart: migrations.databaseUrlFrom), or through a pool in session mode`);
}

/** Statements sent to reach the pooled server connection that holds the lock, to give it back. */
const POOLED_UNLOCK_ATTEMPTS = 10;

/**
 * Unlocks on the session that took the lock, and only there: behind a pooler a bare unlock
 * could reach a session where another run holds it. Directly connected, the first statement is
 * that session; behind a pooler it may take several, or none reach it. Answers whether one did.
 */
async function giveBackLock(connection: Sql, lock: HeldLock): Promise<boolean> {
  if (lock.session === null) return true;
  for (let attempt = 0; attempt < POOLED_UNLOCK_ATTEMPTS; attempt += 1) {
    const [row] = await connection<{ here: boolean }[]>`
      SELECT pg_backend_pid() = ${lock.session} AS here,
             CASE WHEN pg_backend_pid() = ${lock.session} THEN pg_advisory_unlock(${MIGRATION_LOCK_KEY}) END AS released`;
    if (row!.here) {
      lock.session = null;
      return true;
    }
  }
  return false;
}

interface HeldLock {
  session: number | null;
}

/**
 * Polls for the lock instead of waiting inside pg_advisory_lock: a waiting statement holds
 * a snapshot, and CREATE INDEX CONCURRENTLY in the runner that has the lock would wait for
 * that snapshot to go away, a deadlock Postgres would have to break.
 */
async function takeMigrationLock(connection: Sql, options: MigrateOptions): Promise<number> {
  const report = options.lockHolderReportMs ?? { first: 5000, every: 60_000 };
  const started = performance.now();
  let nextReport = report.first;
  for (;;) {
    const [row] = await connection<{ locked: boolean; pid: number }[]>`SELECT pg_try_advisory_lock(${MIGRATION_LOCK_KEY}) AS locked, pg_backend_pid() AS pid`;
    if (row!.locked) return row!.pid;
    const waited = performance.now() - started;
    if (options.onLockHeld && waited >= nextReport) {
      nextReport = waited + report.every;
      const holder = await migrationLockHolder(connection);
      if (holder) options.onLockHeld(holder, waited);
    }
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
  }
}

/** The session holding the migration lock (an advisory lock on a key below 2^32: classid 0, objsubid 1). */
async function migrationLockHolder(connection: Sql): Promise<MigrationLockHolder | null> {
  const [row] = await connection<{ pid: number; application_name: string; client_addr: string | null; state: string | null; busy_seconds: number | null; building: string | null }[]>`
    SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, a.state,
           extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::integer AS busy_seconds,
           (SELECT coalesce(p.index_relid::regclass::text, '') || ' (' || p.phase || ')' FROM pg_stat_progress_create_index p WHERE p.pid = a.pid) AS building
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = 0 AND l.objid = ${MIGRATION_LOCK_KEY} AND l.objsubid = 1`;
  return row ? { pid: row.pid, applicationName: row.application_name, clientAddress: row.client_addr, state: row.state, busySeconds: row.busy_seconds, building: row.building } : null;
}

const LOCK_POLL_MS = 200;
