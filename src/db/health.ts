import type { Sql } from './client';

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
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'unavailable'>((resolve) => {
    timer = setTimeout(() => resolve('unavailable'), timeoutMs);
  });
  const answered = query.then(() => 'ok' as const, () => 'unavailable' as const);
  return Promise.race([answered, timeout]).finally(() => clearTimeout(timer));
}
