import type { Sql } from '../db/client';
import { deliverReply } from './deliver-reply';
import type { OutboundRow } from './record-decision';
import type { ReplyClient } from '../replies/reply-clients';
import type { Metrics } from '../telemetry/metrics';
import { RetryableError, WagateError } from '../errors';
import { ERASED, NOT_SENT_ERASED } from './erasure';
import { failpoint } from '../failpoints';

export interface UnknownReply {
  id: string;
  source: string;
  inbound_message_id: string;
  recipient: string;
  last_error: string | null;
  updated_at: Date;
}

export async function listUnknownReplies(sql: Sql): Promise<UnknownReply[]> {
  return sql<UnknownReply[]>`
    SELECT id::text, webhook_source AS source, inbound_message_id, recipient, last_error, updated_at
    FROM outbound_messages WHERE status = 'unknown' ORDER BY outbound_messages.id`;
}

/**
 * Sends an 'unknown' reply again, on an operator's decision (e.g. after checking the
 * provider's console that it never arrived). Never done automatically. The reply goes from
 * 'unknown' straight to 'sending' in one commit before the call: its message is finished,
 * and unless a `dlq replay` reopens it, no queue copy will come to settle a reply left in
 * between. If the resend fails in a way that sent nothing (a 503, a 429, a refused
 * connection), the reply goes back to 'unknown', since the first attempt's fate is still
 * unknown, so that it can be resent later; so it does when the resend itself stops midway (its
 * answer not recorded). One that cannot even be put back (the database gone, the command
 * killed) is marked unknown by a worker later: markAbandonedSends.
 */
export async function resendReply(sql: Sql, id: string, sendReply: ReplyClient, metrics: Metrics): Promise<string> {
  const [row] = await sql<(OutboundRow & { webhook_source: 'whatsapp' | 'twilio' })[]>`
    UPDATE outbound_messages SET status = 'sending', attempts = attempts + 1, updated_at = now()
    WHERE id = ${id} AND status = 'unknown' AND body IS NOT NULL AND recipient <> ${ERASED}
    RETURNING id::text, kind, status, recipient, business_number, body, order_id::text, attempts, webhook_source`;
  if (!row) {
    const [found] = await sql<{ status: string; has_body: boolean }[]>`
      SELECT status, body IS NOT NULL AND recipient <> ${ERASED} AS has_body FROM outbound_messages WHERE id = ${id}`;
    if (found?.status === 'unknown' && !found.has_body) {
      throw new WagateError('OPERATION_REFUSED', `reply ${id} has no text any more (personal-data retention or an erasure removed it); settle it instead: wagate replies settle --id ${id} --as sent|failed`);
    }
    throw notUnknown(id, found?.status, 'resent');
  }
  await failpoint('replies.resend-after-mark');
  try {
    // Marked here already: deliverReply's own mark moves only replies never sent.
    return await deliverReply(sql, row.webhook_source, row, sendReply, metrics, { markSending: async () => true });
  } catch (error) {
    const nothingSent = error instanceof RetryableError;
    const reason = nothingSent
      ? `resend failed, nothing was sent: ${(error as Error).message}`
      : `${RESEND_STOPPED}: ${(error as Error).message}`;
    // A refusal for good ('failed') stays; only a reply this resend left in between goes back.
    const [back] = await sql`UPDATE outbound_messages SET status = 'unknown', last_error = ${reason}, updated_at = now()
      WHERE id = ${id} AND status IN ('sending', 'retry') RETURNING id`.catch(() => []);
    if (!back) throw error;
    if (nothingSent) throw new WagateError('RETRYABLE', `${reason}; the reply is unknown again and can be resent later`);
    throw new WagateError('RETRYABLE', `${reason}; the reply is unknown again: check the provider's console before resending it`);
  }
}

/** Why a resend's reply is unknown once more: it stopped after its mark, its outcome not recorded. */
const RESEND_STOPPED = 'an operator\'s resend stopped before its outcome was recorded';

/**
 * How long a reply must have been left 'sending' or 'retry' before a worker takes its attempt
 * for abandoned: longer than a provider call and the writes of its answer (about 2 s of tries)
 * with room to spare, 10 s at least.
 */
export const abandonedSendAfterMs = (replyTimeoutMs: number) => Math.max(3 * replyTimeoutMs, replyTimeoutMs + 10_000);

/** Why the workers marked a reply unknown that was left in between with its message finished. */
export const SEND_ABANDONED = 'an attempt stopped before its outcome was recorded, its message finished meanwhile (most likely an operator\'s resend, killed)';

/**
 * Replies left 'sending' or 'retry' with their message finished, which nothing would ever move
 * again: an operator's resend killed, or the database gone before it could put the reply back
 * (a worker's reply in between always has its message queued or processing, and that message's
 * next claim settles it). Marked unknown, so that they show up in `wagate replies unknown` and
 * the unknown-replies alert instead of staying so for good; left alone for longer than any
 * provider call lasts (olderThanMs), so an attempt still under way is not touched. A 'retry'
 * of an erased customer was never sent and never will be: failed. Answers how many became unknown.
 */
export async function markAbandonedSends(sql: Sql, olderThanMs: number): Promise<number> {
  const rows = await sql<{ status: string }[]>`
    UPDATE outbound_messages o
    SET status = CASE WHEN o.status = 'retry' AND o.recipient = ${ERASED} THEN 'failed' ELSE 'unknown' END,
        last_error = CASE WHEN o.status = 'retry' AND o.recipient = ${ERASED} THEN ${NOT_SENT_ERASED} ELSE ${SEND_ABANDONED} END,
        updated_at = now()
    WHERE o.status IN ('sending', 'retry') AND o.updated_at < now() - make_interval(secs => ${olderThanMs / 1000})
      AND NOT EXISTS (SELECT 1 FROM webhook_messages m
                      WHERE m.webhook_source = o.webhook_source AND m.message_id = o.inbound_message_id
                        AND wagate_unfinished(m.status))
    RETURNING o.status`;
  return rows.filter((row) => row.status === 'unknown').length;
}

export type Settlement = 'sent' | 'failed';

/** The last_error of a reply an operator settled as failed: a replay of its message leaves it so. */
export const SETTLED_NOT_RESENT = 'settled by an operator: not delivered, not resent';

/**
 * Closes an 'unknown' reply without sending, once an operator has found out what happened
 * (the provider's console shows it delivered, or the customer was answered another way).
 */
export async function settleReply(sql: Sql, id: string, as: Settlement): Promise<void> {
  const note = as === 'sent' ? 'settled by an operator: delivered' : SETTLED_NOT_RESENT;
  const [row] = await sql`
    UPDATE outbound_messages SET status = ${as}, last_error = ${note}, updated_at = now()
    WHERE id = ${id} AND status = 'unknown' RETURNING id`;
  if (!row) {
    const [found] = await sql<{ status: string }[]>`SELECT status FROM outbound_messages WHERE id = ${id}`;
    throw notUnknown(id, found?.status, 'settled');
  }
}

/** Why a reply could not be resent or settled: there is none with that id, or its outcome is known. */
function notUnknown(id: string, status: string | undefined, what: 'resent' | 'settled'): WagateError {
  if (status === undefined) return new WagateError('OPERATION_REFUSED', `there is no reply ${id}: wagate replies unknown lists the ones that can be ${what}`);
  return new WagateError('OPERATION_REFUSED', `reply ${id} is ${status}, not unknown; only unknown replies can be ${what}`);
}

/** Replies whose outcome is unknown, per provider: what the worker exports as a gauge. */
export async function countUnknownReplies(sql: Sql): Promise<Record<'whatsapp' | 'twilio', number>> {
  const rows = await sql<{ source: 'whatsapp' | 'twilio'; count: number }[]>`
    SELECT webhook_source AS source, count(*)::integer AS count FROM outbound_messages WHERE status = 'unknown' GROUP BY 1`;
  const counts = { whatsapp: 0, twilio: 0 };
  for (const row of rows) counts[row.source] = row.count;
  return counts;
}
