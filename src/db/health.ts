import { WagateError } from '../errors';
import { settleWithin } from '../settle-within';
import type { Sql } from './client';
import { explainPostgresFailure, isLoginRefused } from './postgres-errors';

/**
 * A database that hangs without closing connections never fails the query; the probe must
 * still answer, and within a typical probe timeout.
 */
const READY_CHECK_TIMEOUT_MS = 2000;

/** Whether Postgres answers a trivial query within the probe's deadline; shared by ingest and worker. */
export function postgresAnswers(sql: Sql): Promise<'ok' | 'unavailable'> {
  return answersWithin(sql`SELECT 1`, READY_CHECK_TIMEOUT_MS);
}

async function answersWithin(query: Promise<unknown>, timeoutMs: number): Promise<'ok' | 'unavailable'> {
  const answered = query.then(() => 'ok' as const, () => 'unavailable' as const);
  return settleWithin(answered, timeoutMs, 'unavailable' as const);
}

/**
 * Stops a starting process whose database login is wrong (password, user, database name),
 * which no retry can fix, so that the crash and its message show where it runs. A database
 * that is merely unreachable is left to readiness and retries, as in an outage.
 */
export async function refuseWrongDatabaseLogin(sql: Sql, databaseUrl: string): Promise<void> {
  const failure = await sql`SELECT 1`.then(
    () => null,
    (error: unknown) => error,
  );
  if (failure && isLoginRefused(failure)) {
    throw new WagateError('DATABASE_LOGIN_REFUSED', explainPostgresFailure(failure, databaseUrl) ?? (failure as Error).message, { cause: failure });
  }
}
