import type { Sql } from '../db/client';

/**
 * The backlog: every message ready for a worker, in a queue (or its outbox on the way there)
 * or held by a worker. Not the ones parked in a retry tier until their next try: more workers
 * would only wait beside them, so a provider outage does not scale the workers up. The broker
 * shows only the ready ones (up to WORK_SHARDS × WORKER_PREFETCH more can be held), while
 * Postgres knows all of them. wagate_unfinished(status), not the plain condition, so that the
 * partial index webhook_messages_unfinished_ready_idx serves this count as an index-only scan
 * (migrations 013 and 018 say why).
 */
export async function countBacklog(sql: Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM webhook_messages
    WHERE wagate_unfinished(status) AND (status = 'processing' OR waiting_until IS NULL OR waiting_until <= now())`;
  return row!.n;
}
