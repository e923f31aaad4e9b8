import type { Sql } from '../db/client';

/**
 * The backlog: every unfinished message, ready in a queue or held unacked by a worker. The
 * broker shows only the ready ones (up to WORK_SHARDS × WORKER_PREFETCH more can be held), while
 * Postgres knows both; the partial index webhook_messages_unfinished_idx serves this count.
 */
export async function countBacklog(sql: Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM webhook_messages WHERE status IN ('queued', 'processing')`;
  return row!.n;
}
