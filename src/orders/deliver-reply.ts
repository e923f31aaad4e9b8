import type { Sql } from '../db/client';
import type { ReplyClient } from '../replies/reply-clients';
import type { Metrics } from '../telemetry/metrics';
import { PermanentError, RetryableError } from '../errors';
import { ERASED } from './erasure';
import type { OutboundRow } from './record-decision';

export type DeliveryResult = 'sent' | 'unknown' | 'already_settled';

/**
 * Sends a reply at most once. The row is marked 'sending' (committed) before the provider
 * is called; a row found still 'sending' means an earlier attempt died mid-call, so its fate
 * is unknown and it is not sent again. Only 'pending' and 'retry' (definitely not sent) may send.
 */
export async function deliverReply(
  sql: Sql,
  source: 'whatsapp' | 'twilio',
  outbound: OutboundRow,
  sendReply: ReplyClient,
  metrics: Metrics,
): Promise<DeliveryResult> {
  const [claimed] = await sql<{ id: string }[]>`
    UPDATE outbound_messages SET status = 'sending', attempts = attempts + 1, updated_at = now()
    WHERE id = ${outbound.id} AND status IN ('pending', 'retry') AND recipient <> ${ERASED}
    RETURNING id::text`;
  if (!claimed) {
    const [erased] = await sql`
      UPDATE outbound_messages SET status = 'failed', last_error = 'not sent: the customer was erased', updated_at = now()
      WHERE id = ${outbound.id} AND status IN ('pending', 'retry') AND recipient = ${ERASED}
      RETURNING id`;
    if (erased) return 'already_settled';
    const [orphan] = await sql`
      UPDATE outbound_messages SET status = 'unknown', last_error = 'an earlier attempt stopped during the provider call', updated_at = now()
      WHERE id = ${outbound.id} AND status = 'sending'
      RETURNING id`;
    if (orphan) {
      metrics.confirmations.inc({ provider: source, result: 'unknown' });
      return 'unknown';
    }
    // A reply that failed for good earlier (its message's dead-lettering did not finish, or a
    // lost copy was put back) keeps the message dead, where an operator can replay it.
    const [settled] = await sql<{ status: string; last_error: string | null }[]>`
      SELECT status, last_error FROM outbound_messages WHERE id = ${outbound.id}`;
    if (settled?.status === 'failed') throw new PermanentError(settled.last_error ?? 'the reply failed permanently earlier');
    return 'already_settled';
  }
  const started = performance.now();
  const outcome = await sendReply({ source, to: outbound.recipient, from: outbound.business_number, body: outbound.body });
  metrics.providerDuration.observe({ provider: source }, (performance.now() - started) / 1000);
  switch (outcome.kind) {
    case 'sent':
      // Receipts may have arrived before we learnt the provider id: fold them in now.
      // 'unknown' too: another worker may have taken the shard over meanwhile and marked this
      // send unknown; the provider's answer settles it.
      await sql`
        UPDATE outbound_messages SET status = 'sent', provider_message_id = ${outcome.providerMessageId}, last_error = NULL,
          delivery_status = (SELECT status FROM message_statuses
                             WHERE webhook_source = ${source} AND message_id = ${outcome.providerMessageId}
                             ORDER BY wagate_receipt_rank(status) DESC LIMIT 1),
          updated_at = now()
        WHERE id = ${outbound.id} AND status IN ('sending', 'unknown')`;
      metrics.confirmations.inc({ provider: source, result: 'sent' });
      return 'sent';
    case 'unknown':
      await settle(sql, outbound.id, 'unknown', outcome.error);
      metrics.confirmations.inc({ provider: source, result: 'unknown' });
      return 'unknown';
    case 'retry':
      await settle(sql, outbound.id, 'retry', outcome.error);
      metrics.confirmations.inc({ provider: source, result: 'retry' });
      throw new RetryableError(outcome.error, outcome.retryAfterMs);
    case 'permanent':
      await settle(sql, outbound.id, 'failed', outcome.error);
      metrics.confirmations.inc({ provider: source, result: 'failed' });
      throw new PermanentError(outcome.error);
  }
}

/**
 * Only from 'sending': if another worker has meanwhile marked this send unknown (it took the
 * shard over while we were in the call), the reply stays unknown, in front of an operator,
 * rather than becoming a 'retry' that no queue message will ever pick up.
 */
async function settle(sql: Sql, id: string, status: string, error: string): Promise<void> {
  await sql`UPDATE outbound_messages SET status = ${status}, last_error = ${error}, updated_at = now() WHERE id = ${id} AND status = 'sending'`;
}
