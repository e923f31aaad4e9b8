import type { Sql } from '../db/client';
import { isUndefinedTable } from '../db/postgres-errors';
import { recordedRetryDelays } from './shard-topology';

/**
 * How long an unfinished message may go untouched before it counts as stuck: the longest
 * retry tier plus an hour. Every try and every hand-over to a tier updates the row, so a
 * message still on its way is seen well within that.
 */
export function stuckAfterMs(retryDelaysMs: readonly number[]): number {
  return Math.max(0, ...retryDelaysMs) + 60 * 60 * 1000;
}

/** The threshold a command used, and the longest tier it waited out. */
export interface GroupStuckThreshold {
  stuckAfterMs: number;
  longestTierMs: number;
}

/**
 * The stuck threshold of the group with this queue prefix, for a command run from a shell:
 * the shell's own RETRY_DELAYS_MS, and any longer tier a process of the group declared before
 * (recorded in Postgres) whose queue still holds messages waiting, plus the hour. With the
 * shell's delays alone, a checkout's defaults took messages waiting in a group's 6-hour tier
 * for lost after 90 minutes, and their requeued copies skipped the provider's back-off; with
 * every tier ever recorded, a tier given up long ago, its queue empty, held the requeue off
 * for hours while the stuck alert fired. `holding` answers which of the delays given have
 * messages waiting in their tier (it asks the broker).
 */
export async function groupStuckAfterMs(
  sql: Sql,
  queuePrefix: string,
  ownDelaysMs: readonly number[],
  holding: (delaysMs: number[]) => Promise<number[]>,
): Promise<GroupStuckThreshold> {
  const own = Math.max(0, ...ownDelaysMs);
  const recorded = await recordedRetryDelays(sql, queuePrefix).catch((error: unknown) => {
    // Before migration 041 nothing is recorded.
    if (isUndefinedTable(error)) return [];
    throw error;
  });
  const longer = recorded.filter((delayMs) => delayMs > own);
  const longestTierMs = Math.max(own, ...(longer.length > 0 ? await holding(longer) : []));
  return { stuckAfterMs: stuckAfterMs([longestTierMs]), longestTierMs };
}

/**
 * Messages still queued or processing, untouched for longer than the retry policy allows,
 * and not waiting in the outbox: their queue copy was lost (the broker's own dead-lettering
 * is at most once, a process died between two steps). Nothing else would ever finish them.
 */
export async function countStuckMessages(sql: Sql, stuckAfter: number): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM webhook_messages m
    WHERE ${isStuck(sql, stuckAfter)}`;
  return row!.n;
}

/**
 * Puts stuck messages back in the outbox, due at once, so the ingest relay publishes them
 * again. Safe if a copy does turn up after all: the worker's claim and the reply's send
 * state make a second copy a no-op.
 */
export async function requeueStuckMessages(sql: Sql, stuckAfter: number): Promise<number> {
  // One statement: the relay publishes queued messages only, so the status and the outbox
  // row must appear together.
  const rows = await sql`
    WITH stuck AS (
      SELECT m.id FROM webhook_messages m
      WHERE ${isStuck(sql, stuckAfter)}
      FOR UPDATE SKIP LOCKED
    ),
    reopened AS (
      UPDATE webhook_messages m SET status = 'queued', waiting_until = NULL, retry_attempt = NULL, retry_attempt_until = NULL, updated_at = now() FROM stuck WHERE m.id = stuck.id
    )
    INSERT INTO outbox (webhook_message_id, lease_until)
    SELECT id, now() FROM stuck
    ON CONFLICT DO NOTHING
    RETURNING webhook_message_id`;
  return rows.length;
}

/**
 * The condition on webhook_messages m that makes a message stuck; one place for the count and
 * the requeue. wagate_unfinished(status) is what the partial index of unfinished messages is
 * built on (migration 013).
 */
function isStuck(sql: Sql, stuckAfter: number) {
  return sql`wagate_unfinished(m.status) AND m.updated_at < now() - make_interval(secs => ${stuckAfter / 1000})
    AND m.payload IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.webhook_message_id = m.id)`;
}
