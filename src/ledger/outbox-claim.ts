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

/**
 * How many of the first rows due a claim looks at per row it may claim. Held-back rows among
 * them are passed over; were all of them held back (thousands of one refused queue's rows
 * first in line), the claim would take none until the refusals' backoff ran out, a second to
 * half a minute.
 */
const CANDIDATES_PER_ROW = 4;

/**
 * Claims up to `limit` outbox rows whose lease expired, in commit order, for `leaseSeconds`;
 * none behind a row of its sender that a sweep sent and the broker refused (released with a
 * backoff) or has not answered yet: claimed anyway, a sender's "cancel" would reach its queue
 * before the "2 pizzas" the broker refused a moment earlier. Only that sender waits; a row
 * refused for good (its queue gone) holds back only messages bound for the same queue.
 *
 * Only the first rows due (CANDIDATES_PER_ROW per row to claim) are looked at, and the sender
 * of each is read by its key: written as a join, Postgres walked webhook_messages from its
 * first row, its whole history, on every claim, and free to choose, it read the sender of
 * every row in the outbox, which after an outage is every message of it, on every claim
 * (test/integration/outbox-claim-plan.test.ts). Finding the held-back senders scans the
 * outbox (it has no such index: a row lives milliseconds), about 4 ms at 100,000 rows.
 */
export function claimExpiredRows(sql: Sql, leaseSeconds: number, limit: number): Promise<ClaimedRow[]> {
  return sql<ClaimedRow[]>`
    WITH held_back AS MATERIALIZED (
      SELECT m.sender_key, min(h.webhook_message_id) AS first_id
      FROM outbox h JOIN webhook_messages m ON m.id = h.webhook_message_id
      WHERE h.lease_until >= now() AND h.attempts > 0
      GROUP BY m.sender_key),
    due AS MATERIALIZED (
      SELECT webhook_message_id FROM outbox WHERE lease_until < now()
      ORDER BY webhook_message_id LIMIT ${limit * CANDIDATES_PER_ROW}),
    claimed AS (
      UPDATE outbox o SET lease_until = now() + make_interval(secs => ${leaseSeconds}), attempts = o.attempts + 1
      WHERE o.webhook_message_id IN (
        SELECT c.webhook_message_id FROM due JOIN outbox c ON c.webhook_message_id = due.webhook_message_id
        WHERE c.lease_until < now()
          AND NOT EXISTS (SELECT 1 FROM held_back b WHERE b.first_id < c.webhook_message_id
                          AND b.sender_key = (SELECT cm.sender_key FROM webhook_messages cm WHERE cm.id = c.webhook_message_id))
        ORDER BY c.webhook_message_id LIMIT ${limit} FOR UPDATE OF c SKIP LOCKED)
      RETURNING o.webhook_message_id, o.traceparent, o.attempts)
    SELECT c.webhook_message_id::text AS id, c.attempts, c.traceparent,
           CASE WHEN m.status = 'queued' THEN m.payload END AS payload
    FROM claimed c LEFT JOIN webhook_messages m ON m.id = c.webhook_message_id
    ORDER BY c.webhook_message_id`;
}
