import type { Source } from '../config';
import { transaction, type Sql } from '../db/client';
import { runWithDeadlockRetry } from './commit-guards';
import { senderKeysOf } from './sender-keys';

export interface ReleaseResult {
  released: number;
  /** Held longer than the personal-data retention: their content is gone, so they stay rate_limited. */
  withoutContent: number;
  /** Rate-limit counters reset: 0, with nothing released, for a number wagate does not know. */
  countersReset: number;
}

/**
 * Puts a sender's rate_limited messages back on the queue after an operator has looked.
 * The status change, the outbox rows and the counter reset commit together; the outbox
 * relay of any running ingest publishes them (their lease is already expired). The number
 * may be given in any of its forms ("+1555…", "1555…", "whatsapp:+1555…"), or as Meta's
 * user id; a number also finds the user ids its messages were keyed on.
 */
export async function releaseSender(sql: Sql, phone: string, source?: Source): Promise<ReleaseResult> {
  // Its second pass takes the counter before messages, against an ingest batch's order: a batch
  // with a duplicate of a message the pass wants and a new message of the sender's can deadlock
  // with it. Either side may be the one Postgres cancels; both try again, whole.
  return runWithDeadlockRetry(() => releaseOnce(sql, phone, source));
}

function releaseOnce(sql: Sql, phone: string, source?: Source): Promise<ReleaseResult> {
  return transaction(sql, async (tx) => {
    const senders = await senderKeysOf(tx, phone);
    const ofSender = () => tx`(sender_key = ANY(${senders}) OR phone_number = ANY(${senders}))
      AND (${source ?? null}::text IS NULL OR webhook_source = ${source ?? null})`;
    const requeue = async () => {
      const rows = await tx<{ id: string }[]>`
        UPDATE webhook_messages SET status = 'queued', updated_at = now()
        WHERE status = 'rate_limited' AND payload IS NOT NULL AND ${ofSender()}
        RETURNING id`;
      if (rows.length > 0) {
        await tx`
          INSERT INTO outbox (webhook_message_id, lease_until)
          SELECT unnest(${rows.map((row) => row.id)}::bigint[]), now()
          ON CONFLICT DO NOTHING`;
      }
      return rows.length;
    };
    // Before the counter, in an ingest batch's order: a message, then the counter.
    let released = await requeue();
    const reset = await tx`
      UPDATE webhook_rate_limits SET is_blocked = false, blocked_at = NULL, request_count = 0, window_start = now()
      WHERE phone_number = ANY(${senders}) AND (${source ?? null}::text IS NULL OR webhook_source = ${source ?? null})`;
    // Again after it: an ingest's batch that recorded a message rate_limited while the first
    // pass ran held the counter until its commit, and the first pass's snapshot could not see
    // it. Left so, the message stayed rate_limited for good, with no block left to release.
    released += await requeue();
    const [empty] = await tx<{ n: number }[]>`
      SELECT count(*)::integer AS n FROM webhook_messages
      WHERE status = 'rate_limited' AND payload IS NULL AND ${ofSender()}`;
    return { released, withoutContent: empty!.n, countersReset: reset.count };
  }) as Promise<ReleaseResult>;
}
