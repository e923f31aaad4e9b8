import { transaction, type Sql } from '../db/client';
import type { QueueMessage } from '../queue/message';
import { ERASED } from './erasure';

/**
 * Reopens the records of a dead letter an operator replays, so the worker takes it again:
 * the message back to queued, a reply that failed permanently back to pending (the operator
 * decided to try again). A reply already sent stays sent, so nothing is duplicated. False
 * when the message was cleaned up, erased or finished meanwhile: the worker would skip it.
 */
export async function reopenDeadMessage(sql: Sql, message: Pick<QueueMessage, 'source' | 'messageId'>): Promise<boolean> {
  const { source, messageId } = message;
  const reopened = await transaction(sql, async (tx) => {
    // 'queued' is taken too: an earlier replay that committed but could not publish left it so.
    // An erased customer's message keeps its final status ('dead' among them) but loses its
    // number: reopened, its queue copy would write the personal data back and message them.
    const messages = await tx`UPDATE webhook_messages SET status = 'queued', last_error = NULL, waiting_until = NULL, updated_at = now()
             WHERE webhook_source = ${source} AND message_id = ${messageId} AND status IN ('dead', 'processing', 'queued')
               AND phone_number IS DISTINCT FROM ${ERASED}`;
    if (messages.count === 0) return 0;
    // A reply whose text retention has removed stays failed: there is nothing to send.
    await tx`UPDATE outbound_messages SET status = 'pending', updated_at = now()
             WHERE webhook_source = ${source} AND inbound_message_id = ${messageId} AND status = 'failed' AND body IS NOT NULL`;
    return messages.count;
  });
  return reopened > 0;
}
