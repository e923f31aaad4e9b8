import type { ErrorCode } from '../errors';

/** Node's socket errors: the server is not there, or the network between us dropped. */
const SOCKET_ERRNOS = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'];
/** postgres.js's own connection errors (its errors.js). */
const CLIENT_CONNECTION_CODES = ['CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED'];
const SQLSTATE_QUERY_CANCELED = '57014';
const SQLSTATE_DEADLOCK = '40P01';
/**
 * 57P01-57P03 shutdown or cannot connect now, 53xxx out of resources, class 08 connection
 * exceptions (08P01 too: PgBouncer reports its own failures with it, "server conn crashed?"
 * when Postgres goes away under it, query_wait_timeout, a failing server login), 25006
 * read-only transaction (connected to a standby, as after a failover until the address points
 * at the new primary).
 */
const SQLSTATE_UNAVAILABLE = /^(57P0[1-3]|53[0-9A-Z]{3}|08[0-9A-Z]{3}|25006)$/;

export type PostgresErrorCode = Extract<ErrorCode, 'DATABASE_UNAVAILABLE' | 'DATABASE_STATEMENT_TIMEOUT' | 'DATABASE_DEADLOCK'>;

/**
 * The one place that reads the codes of Postgres failures, which come in three kinds:
 * socket errnos, postgres.js client codes and SQLSTATEs. Null for anything else (a bug in
 * our SQL, a constraint): no retry fixes those.
 */
export function classifyPostgresError(error: unknown): PostgresErrorCode | null {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  if (code === SQLSTATE_QUERY_CANCELED) return 'DATABASE_STATEMENT_TIMEOUT';
  if (code === SQLSTATE_DEADLOCK) return 'DATABASE_DEADLOCK';
  if (isPgBouncerRefusal(error)) return null;
  if (SOCKET_ERRNOS.includes(code) || CLIENT_CONNECTION_CODES.includes(code) || SQLSTATE_UNAVAILABLE.test(code)) {
    return 'DATABASE_UNAVAILABLE';
  }
  return null;
}

/**
 * The server took the connection, then closed or reset it before Postgres said anything: the
 * sign of a proxy, sidecar or pooler in front of a database it cannot reach. Unlike a refused
 * or timed-out connect, or any SQLSTATE, it is not an answer from Postgres.
 */
export function isClosedUnanswered(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'CONNECTION_CLOSED';
}

/**
 * The statement never left this process: the connection it waited for could not be made (a
 * socket error of the connect or the address lookup, or postgres.js's connect timeout), or its
 * login was refused. Unlike a connection lost after the statement went out, Postgres cannot
 * have run it, let alone committed it. Not by errno alone: EHOSTUNREACH or ETIMEDOUT also ends
 * an established socket whose peer vanished, a commit's answer with it.
 */
export function neverReachedServer(error: unknown): boolean {
  const { code, syscall, errors } = (error as { code?: unknown; syscall?: unknown; errors?: unknown } | null) ?? {};
  // A host of several addresses (localhost, a dual-stack Service) is tried at each: failing at
  // every one, the connect raises them together, or times out on them as a whole.
  if (Array.isArray(errors) && errors.length > 0) return errors.every(neverReachedServer);
  return code === 'CONNECT_TIMEOUT' || code === 'ERR_SOCKET_CONNECTION_TIMEOUT' || syscall === 'connect' || syscall === 'getaddrinfo' || isLoginRefused(error);
}

/**
 * 53400 configuration limit exceeded (temp_file_limit, say): raised by one statement that
 * needed more than it was allowed, not by a server that cannot serve. A smaller statement (half
 * a worker's batch) may go through, and one message's that keeps failing so must use up its
 * tries, not wait for a database that is up. Not 53200 out of memory: the server's own
 * shortage (or its shared lock table full), which fails every statement until it passes.
 */
const SQLSTATE_STATEMENT_OVER_LIMIT = '53400';

export function isStatementOverLimit(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === SQLSTATE_STATEMENT_OVER_LIMIT;
}

/** "The database cannot serve us now", as opposed to a bug in our SQL: down, or too slow for this query. */
export function isDatabaseUnavailable(error: unknown): boolean {
  const kind = classifyPostgresError(error);
  return kind === 'DATABASE_UNAVAILABLE' || kind === 'DATABASE_STATEMENT_TIMEOUT';
}

const SQLSTATE_UNDEFINED_TABLE = '42P01';

/** A table the statement names does not exist: its migration has not been applied yet. */
export function isUndefinedTable(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === SQLSTATE_UNDEFINED_TABLE;
}

/** SQLSTATE class 22, data exception: a value Postgres refuses to store (22P05 U+0000 in jsonb, 22021 in text, 22008 a timestamp out of range). */
const SQLSTATE_DATA_EXCEPTION = /^22[0-9A-Z]{3}$/;
/** 55P03 lock_not_available: a lock_timeout fired. */
const SQLSTATE_LOCK_NOT_AVAILABLE = '55P03';

/** The statement failed because of a value it carried: no retry of the same value can succeed. */
export function isValueRefused(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && SQLSTATE_DATA_EXCEPTION.test(code);
}

/** A lock_timeout fired: the statement gave up waiting for a lock and may simply run again later. */
export function isLockTimeout(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === SQLSTATE_LOCK_NOT_AVAILABLE;
}

/** 23503 foreign_key_violation. */
const SQLSTATE_FOREIGN_KEY_VIOLATION = '23503';

/** A row named another that does not exist (or no longer does). */
export function isForeignKeyViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === SQLSTATE_FOREIGN_KEY_VIOLATION;
}

/** SQLSTATEs of a refused login: 28P01 wrong password, 28000 no such role or no pg_hba entry; 3D000 no such database. */
const LOGIN_HINTS: Record<string, string> = {
  '28P01': 'Postgres refused the password: check the user and password in DATABASE_URL',
  '28000': 'Postgres refused the login: check the user in DATABASE_URL and the server\'s pg_hba.conf',
  '3D000': 'the database named in DATABASE_URL does not exist: create it or fix the URL',
};

/**
 * PgBouncer answers a wrong configuration with 08P01 too, the code of its passing failures:
 * these messages of its own are the ones no retry fixes.
 */
const PGBOUNCER_REFUSALS = /^(no such database|unsupported startup parameter|no such user)\b/;
const PGBOUNCER_HINT = 'PgBouncer refused the connection: check the database and user in DATABASE_URL against PgBouncer\'s [databases] section, and the startup parameters it takes (ignore_startup_parameters)';

/** A refused login or a missing database: no retry helps, so a process should stop and say so. */
export function isLoginRefused(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code in LOGIN_HINTS || isPgBouncerRefusal(error));
}

function isPgBouncerRefusal(error: unknown): boolean {
  const { code, message } = (error as { code?: unknown; message?: unknown } | null) ?? {};
  return code === '08P01' && typeof message === 'string' && PGBOUNCER_REFUSALS.test(message);
}

/**
 * What a person should do about a Postgres failure that stops a command, naming the server
 * (never the password), or null when the failure is not about reaching or logging in.
 */
export function explainPostgresFailure(error: unknown, databaseUrl: string): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  const where = describeServer(databaseUrl);
  if (LOGIN_HINTS[code]) return `${LOGIN_HINTS[code]} (server ${where})`;
  if (isPgBouncerRefusal(error)) return `${PGBOUNCER_HINT} (server ${where}: ${(error as Error).message})`;
  if (classifyPostgresError(error) === 'DATABASE_UNAVAILABLE') return `Postgres at ${where} cannot be reached: check that it runs and that DATABASE_URL points at it`;
  if (SCHEMA_MISSING.has(code)) {
    return `the database ${where} lacks a table, column or function wagate uses: if this release has not migrated it, run \`wagate migrate\` against it first (a Helm install or upgrade runs it as its hook); if it has, check that DATABASE_URL names wagate's database and that its role's search_path reaches wagate's schema`;
  }
  return null;
}

/**
 * undefined_table, undefined_column, undefined_function: most often a command run before
 * `migrate`, or a release newer than the database's schema (the ingest and the worker wait for
 * their migrations at start; operator commands meet the gap in their first statement), but also
 * another database or search_path than wagate's, so the hint names both.
 */
const SCHEMA_MISSING = new Set([SQLSTATE_UNDEFINED_TABLE, '42703', '42883']);

/** user@host:port/database of a DATABASE_URL, never its password. */
export function describeServer(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    if (!url.hostname) return 'from DATABASE_URL';
    return `${url.username || 'postgres'}@${url.hostname}:${url.port || '5432'}${url.pathname}`;
  } catch {
    return 'from DATABASE_URL';
  }
}
