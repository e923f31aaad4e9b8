import type { Sql } from '../db/client';
import type { QueueMessage } from '../queue/message';

/** An outbox row a sweep claimed, with what to publish. */
export interface ClaimedRow {
  id: string;
  /** The claim it goes out under: the row's attempts after this one. */
  attempts: number;
  traceparent: string | null;
  /** Null when the message is no longer queued with its content. */
  payload: QueueMessage | null;
}

/** Where a sweep's claim looks: the rows due after `afterId`, none of the `heldSenders`'. */
export interface ClaimWindow {
  afterId: string;
  /** Senders with a row passed over earlier in this sweep: all of theirs wait for the next. */
  heldSenders: readonly string[];
}

export interface Claim {
  rows: ClaimedRow[];
  /** The rows of the window held back, in commit order, with their senders. */
  held: { id: string; sender: string }[];
  /** The last row due that the window held, and whether it was full (more may be due after it). */
  lastDueId: string | null;
  windowFull: boolean;
}

/**
 * How many rows due a claim looks at per row it may claim. The rest wait for the next window:
 * reading the sender of every row due would cost, after an outage, a lookup per message of it
 * on every claim.
 */
const CANDIDATES_PER_ROW = 4;

/**
 * Claims up to `limit` outbox rows whose lease expired, in commit order, for `leaseSeconds`,
 * among the first rows due after `afterId`; none behind a row of its sender that the broker
 * refused (released with a backoff) or has not answered yet, whether a sweep or its owner sent
 * it (its lease renewed meanwhile), nor any of the window's held senders: claimed anyway, a sender's "cancel" would reach its queue before the
 * "2 pizzas" the broker refused a moment earlier. Only those senders wait.
 *
 * The senders are read by key, a subquery per row of the window, and only while some sender
 * is held back: written as a join, Postgres walked webhook_messages from its first row, its
 * whole history, on every claim (test/integration/outbox-claim-plan.test.ts). Finding the
 * held-back senders scans the outbox (it has no such index: a row lives milliseconds), about
 * 4 ms at 100,000 rows.
 */
export async function claimExpiredRows(sql: Sql, leaseSeconds: number, limit: number, window: ClaimWindow): Promise<Claim> {
  const result = await sql<(ClaimedRow & { held: [string, string][] | null; last_due: string | null; due_count: number | null })[]>`
    WITH held_back AS MATERIALIZED (
      SELECT m.sender_key, min(h.webhook_message_id) AS first_id
      FROM outbox h JOIN webhook_messages m ON m.id = h.webhook_message_id
      WHERE h.lease_until >= now()
      GROUP BY m.sender_key
      UNION ALL
      SELECT sender, 0 FROM unnest(${window.heldSenders as string[]}::text[]) AS sender),
    due AS MATERIALIZED (
      SELECT c.webhook_message_id AS id,
             CASE WHEN EXISTS (SELECT 1 FROM held_back)
                  THEN (SELECT cm.sender_key FROM webhook_messages cm WHERE cm.id = c.webhook_message_id) END AS sender_key
      FROM outbox c WHERE c.lease_until < now() AND c.webhook_message_id > ${window.afterId}::bigint
      ORDER BY c.webhook_message_id LIMIT ${limit * CANDIDATES_PER_ROW}),
    held AS MATERIALIZED (
      SELECT d.id, d.sender_key FROM due d
      WHERE EXISTS (SELECT 1 FROM held_back b WHERE b.sender_key = d.sender_key AND b.first_id < d.id)),
    claimed AS (
      UPDATE outbox o SET lease_until = now() + make_interval(secs => ${leaseSeconds}), attempts = o.attempts + 1
      WHERE o.webhook_message_id IN (
        SELECT c.webhook_message_id FROM due d JOIN outbox c ON c.webhook_message_id = d.id
        WHERE c.lease_until < now() AND NOT EXISTS (SELECT 1 FROM held x WHERE x.id = d.id)
        ORDER BY c.webhook_message_id LIMIT ${limit} FOR UPDATE OF c SKIP LOCKED)
      RETURNING o.webhook_message_id, o.traceparent, o.attempts)
    SELECT c.webhook_message_id::text AS id, c.attempts, c.traceparent,
           CASE WHEN m.status = 'queued' THEN m.payload END AS payload,
           NULL::jsonb AS held, NULL::text AS last_due, NULL::integer AS due_count
    FROM claimed c LEFT JOIN webhook_messages m ON m.id = c.webhook_message_id
    UNION ALL
    SELECT NULL, NULL, NULL, NULL,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(id::text, sender_key) ORDER BY id), '[]'::jsonb) FROM held),
           (SELECT max(id)::text FROM due), (SELECT count(*)::integer FROM due)`;
  const summary = result.find((row) => row.id === null)!;
  return {
    rows: result.filter((row) => row.id !== null).sort((a, b) => compareIds(a.id, b.id)),
    held: (summary.held ?? []).map(([id, sender]) => ({ id, sender })),
    lastDueId: summary.last_due,
    windowFull: summary.due_count === limit * CANDIDATES_PER_ROW,
  };
}

/** Ids are bigints as text: compared by length first, then as text. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
