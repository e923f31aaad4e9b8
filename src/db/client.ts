import postgres from 'postgres';
import type { Config } from '../config';

export type Sql = postgres.Sql<Record<string, never>>;
/** A piece of SQL built with the sql tag, to be placed inside another query. */
export type SqlFragment = postgres.PendingQuery<postgres.Row[]>;

/** An idle pooled connection is closed after this long, so a quiet process holds none. */
const IDLE_CONNECTION_TIMEOUT_SECONDS = 60;
/** Connections are replaced after this long, so a failover or a server-side setting change reaches every one. */
const CONNECTION_MAX_LIFETIME_SECONDS = 30 * 60;
/** Errors a query gets when its connection closed under it: the socket failed, or the server ended the session (57P0x, FATAL). */
const LOST_CONNECTION_CODES = ['CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03'];
/**
 * The most a pool waits before its next connection attempt after failed ones, in seconds.
 * postgres.js's own backoff grows to 10-20 s after a few failures (3^n / 100 s), so after an
 * outage of a few seconds a process kept answering 503, and a worker could not heartbeat,
 * for up to 20 s after Postgres was back: its peers then took it for dead and took its shards.
 */
const MAX_RECONNECT_BACKOFF_SECONDS = 1;
/** How long closing the pool waits for queries under way before it cuts them. */
export const POOL_CLOSE_TIMEOUT_SECONDS = 5;

export interface DatabaseOptions {
  url: string;
  maxConnections: number;
  connectTimeoutSeconds: number;
  statementTimeoutMs: number;
  applicationName: string;
}

/**
 * One pool per process. statement_timeout bounds every query, so that a stuck database
 * becomes a fast 503 instead of a hung request.
 */
export function createDatabase(options: DatabaseOptions): Sql {
  return postgres(options.url, {
    max: options.maxConnections,
    connect_timeout: options.connectTimeoutSeconds,
    idle_timeout: IDLE_CONNECTION_TIMEOUT_SECONDS,
    max_lifetime: CONNECTION_MAX_LIFETIME_SECONDS,
    backoff: reconnectBackoffSeconds,
    onnotice: () => undefined,
    connection: {
      application_name: options.applicationName,
      // As text (its types say number): postgres.js leaves out a falsy parameter, so a 0 (no
      // timeout, for DDL and the operator commands) was never sent and a role's or database's
      // default applied.
      statement_timeout: String(options.statementTimeoutMs) as unknown as number,
    },
  }) as Sql;
}

/** Doubling from 50 ms to MAX_RECONNECT_BACKOFF_SECONDS, with jitter so that a pool's connections do not retry in step. */
export function reconnectBackoffSeconds(retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, MAX_RECONNECT_BACKOFF_SECONDS);
}

/** A pool from the configuration; CLI commands pass a small size and, for DDL, no statement timeout. */
export function databaseFromConfig(
  config: Config,
  applicationName: string,
  overrides: { maxConnections?: number; statementTimeoutMs?: number } = {},
): Sql {
  return createDatabase({
    url: config.DATABASE_URL,
    maxConnections: overrides.maxConnections ?? config.DB_POOL_MAX,
    connectTimeoutSeconds: config.DB_CONNECT_TIMEOUT_SECONDS,
    statementTimeoutMs: overrides.statementTimeoutMs ?? config.DB_STATEMENT_TIMEOUT_MS,
    applicationName,
  });
}

/** The ingest's connections' application_name: `erase` finds their statements by it. */
export const INGEST_APPLICATION_NAME = 'wagate-ingest';

/**
 * Runs work in a transaction on a reserved connection, committed (or, for a rehearsal,
 * rolled back) at the end. Used instead of sql.begin(), which in
 * postgres 3.4.9 can send BEGIN without reserving the connection under load (upstream
 * porsager/postgres#823, #1189): the transaction then stays open on a pooled connection
 * and unrelated queries run inside it. A reserved connection is ours alone until released.
 */
export async function transaction<T>(sql: Sql, work: (tx: Sql) => Promise<T>, finish: 'commit' | 'rollback' = 'commit'): Promise<T> {
  const connection = await sql.reserve();
  let broken = false;
  try {
    await connection`BEGIN`;
    const result = await work(connection as unknown as Sql);
    if (finish === 'commit') await connection`COMMIT`;
    // Nothing is kept either way: a rollback that fails (the connection lost) changes no result.
    else await connection`ROLLBACK`.catch((error: unknown) => void (broken = connectionLost(error)));
    return result;
  } catch (error) {
    // Whether this connection is lost, the rollback tells: the work's error may be another
    // connection's (a pool query the work ran), and a lost one refuses the rollback at once.
    await connection`ROLLBACK`.catch((rollbackError: unknown) => void (broken = connectionLost(rollbackError)));
    throw error;
  } finally {
    // A lost connection is already back among the pool's closed ones, to be reopened on demand.
    // Releasing it as well would put the dead connection among the open ones, and in
    // postgres 3.4.9 the next query sent on it never settles (porsager/postgres#1199).
    if (!broken) connection.release();
  }
}

/** The socket under a reserved connection is gone (postgres.js's own codes, or a socket errno). */
function connectionLost(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && LOST_CONNECTION_CODES.includes(code);
}

/**
 * Closes the pool at shutdown. A connection that already broke (the database restarted, the
 * network reset it) can reject while closing; that must not turn a clean shutdown into a failure.
 */
export async function closeDatabase(sql: Sql, onError: (error: Error) => void = () => undefined): Promise<void> {
  await sql.end({ timeout: POOL_CLOSE_TIMEOUT_SECONDS }).catch(onError);
}
