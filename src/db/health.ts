import { setTimeout as delay } from 'node:timers/promises';
import { WagateError } from '../errors';
import { settleWithin } from '../settle-within';
import type { Sql } from './client';
import { describeServer, explainPostgresFailure, isClosedUnanswered, isLoginRefused } from './postgres-errors';

/**
 * A database that hangs without closing connections never fails the query; the probe must
 * still answer, and within a typical probe timeout.
 */
const READY_CHECK_TIMEOUT_MS = 2000;

/**
 * What Postgres answers within the probe's deadline: 'read-only' from a server that takes no
 * writes, such as a standby the connections reached after a failover (a stale DNS name, the old
 * primary back as a replica), where every ledger commit fails with SQLSTATE 25006. Shared by
 * ingest and worker.
 */
export type PostgresAnswer = 'ok' | 'read-only' | 'unavailable';

export function postgresAnswers(sql: Sql): Promise<PostgresAnswer> {
  const asked = sql<{ read_only: boolean }[]>`SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS read_only`
    .then(([row]) => (row?.read_only ? 'read-only' as const : 'ok' as const));
  return answersWithin(asked, READY_CHECK_TIMEOUT_MS);
}

/**
 * How long one answer of Postgres stands for every readiness question after it. /readyz is on
 * the public port, unauthenticated: each request used to send a query, and a client looping on
 * it queued them before the ledger's commits (postgres.js queues on a busy connection when
 * none is free), until the kubelet's own probe timed out and the pod left its Service.
 */
const READY_ANSWER_REUSE_MS = 1000;

export type PostgresCheck = () => Promise<PostgresAnswer>;

/**
 * postgresAnswers, asked at most once at a time and at most once a second: every caller in
 * between gets the question in flight, or the last answer.
 */
export function createSharedPostgresCheck(sql: Sql): PostgresCheck {
  let inFlight: Promise<PostgresAnswer> | undefined;
  let last: { at: number; answer: PostgresAnswer } | undefined;
  return () => {
    if (inFlight) return inFlight;
    if (last && performance.now() - last.at < READY_ANSWER_REUSE_MS) return Promise.resolve(last.answer);
    inFlight = postgresAnswers(sql).then((answer) => {
      last = { at: performance.now(), answer };
      inFlight = undefined;
      return answer;
    });
    return inFlight;
  };
}

async function answersWithin(query: Promise<'ok' | 'read-only'>, timeoutMs: number): Promise<PostgresAnswer> {
  const answered = query.catch(() => 'unavailable' as const);
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

/**
 * How long a starting process waits for Postgres's first answer, right or wrong. Errors
 * arrive within the connect timeout; only a server that takes connections and closes them
 * before answering (a proxy or sidecar whose upstream is down) gives none, and postgres.js
 * then reconnects in a tight loop with the query waiting for ever.
 */
const FIRST_ANSWER_TIMEOUT_MS = 10_000;

/** The pause between first queries whose connection was closed unanswered, beside postgres.js's own reconnect backoff. */
const CLOSED_RETRY_PAUSE_MS = 100;

/**
 * Stops a start that Postgres would hang without a word: the process exits 1 with a message,
 * and its restarts show where it runs, instead of a pod that never listens and is killed by
 * its liveness probe with nothing in its log. A database that answers with an error is left
 * to the start's own checks, as before. The wait is 10 s, or the connect timeout and 5 s more
 * when that is longer, so that an unreachable server is reported as such.
 *
 * A connection closed or reset before any answer is asked again until the deadline, not taken
 * for an answer: when such closes come fast, or arrive as resets, postgres.js fails the query
 * instead of holding it, and the start went on as in an outage, never ready and saying nothing.
 */
export async function refuseSilentDatabase(sql: Sql, databaseUrl: string, connectTimeoutSeconds: number): Promise<void> {
  const timeoutMs = Math.max(FIRST_ANSWER_TIMEOUT_MS, (connectTimeoutSeconds + 5) * 1000);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const outcome = sql`SELECT 1`.then(
      () => 'answered' as const,
      (error: unknown) => (isClosedUnanswered(error) ? 'closed' as const : 'answered' as const),
    );
    const settled = await settleWithin(outcome, deadline - Date.now(), 'silent' as const);
    if (settled === 'answered') return;
    if (settled === 'silent') break;
    await delay(CLOSED_RETRY_PAUSE_MS);
  }
  throw new WagateError(
    'DATABASE_UNAVAILABLE',
    `Postgres at ${describeServer(databaseUrl)} took connections but gave no answer within ${Math.round(timeoutMs / 1000)} s: ` +
      'something in between may accept them and close them at once (a proxy or sidecar whose upstream is down, a pooler ' +
      'out of server connections); check it and the database, then start again',
  );
}
