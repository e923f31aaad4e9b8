import type { Sql } from '../db/client';
import { runWithDeadlockRetry } from '../ledger/commit-guards';
import { foldReceipts } from '../ledger/fold-receipts';
import { ERASED } from './erasure';

/** A settled reply's last_error once its customer was erased: never the provider's text. */
const ANSWER_NOT_KEPT = 'the provider\'s answer is not kept: the customer was erased';

/**
 * What the provider's answer makes of a reply this attempt marked 'sending', and what its
 * inbound message becomes: written together, in one statement, for one reply or many.
 */
export interface ReplySettlement {
  replyId: string;
  /** 'sent' with the provider's message id, or 'unknown' with the error that hid the outcome. */
  status: 'sent' | 'unknown';
  providerMessageId: string | null;
  error: string | null;
  source: 'whatsapp' | 'twilio';
  /** The inbound message to finish; null to leave it (an operator's resend). */
  finish: { messageId: string; outcome: 'processed' | 'unmatched' } | null;
  /**
   * The token of the attempt whose mark this settles (SendingMark): a reply 'sending' under
   * another attempt's is that one's to write. Absent: whichever attempt holds it.
   */
  attempt?: string;
}

/**
 * Settles replies and finishes their messages in one statement and one commit.
 *
 * A reply moves only from 'sending', or to 'sent' from 'unknown' as well: another worker may
 * have taken the shard over during the call and marked the send unknown, and the provider's
 * answer settles it. Receipts that arrived before the provider id was known are folded in,
 * and again once the statement has committed, for a receipt committing at the same moment
 * (foldReceipts); that fold's failure is returned. The message is finished whatever the
 * reply row did, as long as it is still 'processing'. Run again, it changes nothing, so a
 * batch that failed after its commit can be written apart.
 */
export async function settleReplies(sql: Sql, settlements: readonly ReplySettlement[]): Promise<{ foldFailure: unknown }> {
  const column = <T>(pick: (s: ReplySettlement) => T) => settlements.map(pick);
  await sql`
    WITH input AS (
      SELECT * FROM unnest(${column((s) => s.replyId)}::bigint[], ${column((s) => s.status)}::text[],
                           ${column((s) => s.providerMessageId)}::text[], ${column((s) => s.error)}::text[],
                           ${column((s) => s.source)}::text[], ${column((s) => s.finish?.messageId ?? null)}::text[],
                           ${column((s) => s.finish?.outcome ?? null)}::text[], ${column((s) => s.attempt ?? null)}::uuid[])
        AS i(reply_id, status, provider_message_id, last_error, source, message_id, outcome, attempt)),
    reply AS (
      -- An unknown reply keeps its last attempt's token: only that attempt's receipts may settle it (foldReceipts).
      UPDATE outbound_messages o SET status = i.status, sending_attempt = CASE WHEN i.status = 'unknown' THEN o.sending_attempt END, updated_at = now(),
        -- The provider's text may quote the number of a customer erased during the call.
        last_error = CASE WHEN o.recipient = ${ERASED} AND i.last_error IS NOT NULL THEN ${ANSWER_NOT_KEPT} ELSE i.last_error END,
        provider_message_id = coalesce(i.provider_message_id, o.provider_message_id),
        delivery_status = CASE WHEN i.status = 'sent'
          -- Only what a receipt can write (ranked above 0): Twilio's queued or Meta's warning is no delivery status.
          THEN (SELECT r.status FROM message_statuses r WHERE r.webhook_source = i.source AND r.message_id = i.provider_message_id
                  AND wagate_receipt_rank(r.status) > 0
                ORDER BY wagate_receipt_rank(r.status) DESC LIMIT 1)
          ELSE o.delivery_status END
      FROM input i
      WHERE o.id = i.reply_id
        AND ((o.status = 'sending' AND (i.attempt IS NULL OR o.sending_attempt = i.attempt)) OR (i.status = 'sent' AND o.status = 'unknown'))
      RETURNING o.id),
    finished AS (
      UPDATE webhook_messages m SET status = i.outcome, last_error = NULL, processed_at = now(), updated_at = now()
      FROM input i
      WHERE i.message_id IS NOT NULL AND m.webhook_source = i.source AND m.message_id = i.message_id AND m.status = 'processing'
      RETURNING m.id)
    SELECT (SELECT count(*) FROM reply)::integer AS replies, (SELECT count(*) FROM finished)::integer AS messages`;
  const sent = settlements.flatMap((s) => (s.status === 'sent' && s.providerMessageId !== null ? [{ source: s.source, providerMessageId: s.providerMessageId }] : []));
  // The settle is committed and its message finished: a retry of the message would find the
  // reply settled and fold nothing, so a failed fold is reported, not thrown. The reply's
  // next receipt, or cleanup, folds the receipt in then.
  try {
    await runWithDeadlockRetry(() => foldReceipts(sql, sent));
    return { foldFailure: null };
  } catch (error) {
    return { foldFailure: error };
  }
}
