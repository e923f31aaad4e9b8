import type { Sql } from '../db/client';
import { ERASED, NOT_SENT_ERASED } from './erasure';

/** One attempt's mark of a reply as 'sending', the commit that must come before its provider call. */
export interface SendingMark {
  replyId: string;
  /** This attempt's token (a UUID), kept on the reply while it is 'sending'. */
  attempt: string;
  /**
   * Tokens of earlier attempts of the same message whose marks went unanswered, so that none
   * of them called the provider: a reply still 'sending' under one of them is this attempt's to
   * take over. Any other reply found 'sending' may have been sent, and stays out of reach.
   */
  unsentAttempts: readonly string[];
}

/** The last_error of an order confirmation not sent because the customer cancelled its order first. */
export const NOT_SENT_ORDER_CANCELLED = 'not sent: the customer cancelled the order before its confirmation went out';

/**
 * A confirmation that has not gone out by the time its order is cancelled (it waited in a retry
 * tier while the customer's "cancel" was answered, or a dead letter replayed it days later)
 * would confirm, after the cancellation, an order the shop shows cancelled: it is not sent.
 * A condition on the reply `o`.
 */
export const confirmsCancelledOrder = (sql: Sql) => sql`
  (o.kind = 'order_confirmation' AND EXISTS (SELECT 1 FROM orders r WHERE r.id = o.order_id AND r.status = 'cancelled'))`;

/**
 * Marks replies 'sending' in one statement, for one reply or many. Only a reply that is
 * definitely not sent ('pending', 'retry', or 'sending' under an attempt that called nothing),
 * whose customer was not erased, and that does not confirm an order cancelled since, moves; for
 * each mark, true when it did, and then this attempt alone may call the provider. `attempts`
 * counts the marks, a take-over's too; marking again with the same token answers true again and
 * counts nothing.
 */
export async function markSending(sql: Sql, marks: readonly SendingMark[]): Promise<boolean[]> {
  const unsent = marks.flatMap((mark) => mark.unsentAttempts.map((token) => ({ replyId: mark.replyId, token })));
  const rows = await sql<{ id: string }[]>`
    UPDATE outbound_messages o
    SET status = 'sending', attempts = o.attempts + CASE WHEN o.status = 'sending' AND o.sending_attempt = m.attempt THEN 0 ELSE 1 END,
        sending_attempt = m.attempt, updated_at = now()
    FROM unnest(${marks.map((mark) => mark.replyId)}::bigint[], ${marks.map((mark) => mark.attempt)}::uuid[]) AS m(id, attempt)
    WHERE o.id = m.id AND o.recipient <> ${ERASED} AND NOT ${confirmsCancelledOrder(sql)}
      AND (o.status IN ('pending', 'retry')
        -- This attempt's own mark, written once already: a batch isolated after its answer was lost.
        OR (o.status = 'sending' AND o.sending_attempt = m.attempt)
        OR (o.status = 'sending' AND (o.id, o.sending_attempt) IN (
          SELECT * FROM unnest(${unsent.map((entry) => entry.replyId)}::bigint[], ${unsent.map((entry) => entry.token)}::uuid[]))))
    RETURNING o.id::text`;
  const marked = new Set(rows.map((row) => row.id));
  return marks.map((mark) => marked.has(mark.replyId));
}

/**
 * For a message whose customer was erased, dropped without processing: its reply left
 * 'sending' by an attempt that called nothing (a carried token) was never sent, and fails as
 * such; otherwise nothing would ever settle it but the abandoned-sends sweep, as unknown.
 */
export async function failUnsentErasedReply(sql: Sql, source: string, messageId: string, unsentAttempts: readonly string[]): Promise<void> {
  if (unsentAttempts.length === 0) return;
  await sql`
    UPDATE outbound_messages SET status = 'failed', last_error = ${NOT_SENT_ERASED}, sending_attempt = NULL, updated_at = now()
    WHERE webhook_source = ${source} AND inbound_message_id = ${messageId} AND recipient = ${ERASED}
      AND status = 'sending' AND sending_attempt = ANY(${unsentAttempts}::uuid[])`;
}
