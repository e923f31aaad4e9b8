import type { Sql } from '../db/client';
import { deliverReply } from './deliver-reply';
import type { OutboundRow } from './record-decision';
import type { ReplyClient } from '../replies/reply-clients';
import type { Metrics } from '../telemetry/metrics';
import { RetryableError, WagateError } from '../errors';

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
    FROM outbound_messages WHERE status = 'unknown' ORDER BY id`;
}

/**
 * Sends an 'unknown' reply again, on an operator's decision (e.g. after checking the
 * provider's console that it never arrived). Never done automatically. If the resend fails
 * in a way that sent nothing (a 503, a 429, a refused connection), the reply goes back to 'unknown',
 * since the first attempt's fate is still unknown, so that it can be resent later.
 */
export async function resendReply(sql: Sql, id: string, sendReply: ReplyClient, metrics: Metrics): Promise<string> {
  const [row] = await sql<(OutboundRow & { webhook_source: 'whatsapp' | 'twilio' })[]>`
    UPDATE outbound_messages SET status = 'retry', updated_at = now() WHERE id = ${id} AND status = 'unknown' AND body IS NOT NULL
    RETURNING id::text, kind, status, recipient, business_number, body, order_id::text, attempts, webhook_source`;
  if (!row) {
    const [found] = await sql<{ status: string; has_body: boolean }[]>`SELECT status, body IS NOT NULL AS has_body FROM outbound_messages WHERE id = ${id}`;
    if (found?.status === 'unknown' && !found.has_body) {
      throw new WagateError('OPERATION_REFUSED', `reply ${id} has no text any more (personal-data retention or an erasure removed it); settle it instead: wagate replies settle --id ${id} --as sent|failed`);
    }
    throw notUnknown(id, found?.status, 'resent');
  }
  try {
    return await deliverReply(sql, row.webhook_source, row, sendReply, metrics);
  } catch (error) {
    if (!(error instanceof RetryableError)) throw error;
    const reason = `resend failed, nothing was sent: ${error.message}`;
    await sql`UPDATE outbound_messages SET status = 'unknown', last_error = ${reason}, updated_at = now() WHERE id = ${id} AND status = 'retry'`;
    throw new WagateError('RETRYABLE', `${reason}; the reply is unknown again and can be resent later`);
  }
}

export type Settlement = 'sent' | 'failed';

/**
 * Closes an 'unknown' reply without sending, once an operator has found out what happened
 * (the provider's console shows it delivered, or the customer was answered another way).
 */
export async function settleReply(sql: Sql, id: string, as: Settlement): Promise<void> {
  const note = as === 'sent' ? 'settled by an operator: delivered' : 'settled by an operator: not delivered, not resent';
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
