import type { Sql } from '../db/client';

/**
 * The backlog: every unfinished message, ready in a queue or held unacked by a worker. The
 * broker shows only the ready ones (up to WORK_SHARDS × WORKER_PREFETCH more can be held), while
 * Postgres knows both. wagate_unfinished(status), not the plain condition, so that the partial
 * index webhook_messages_unfinished_count_idx serves this count (migration 013 says why).
 */
export async function countBacklog(sql: Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM webhook_messages WHERE wagate_unfinished(status)`;
  return row!.n;
}
