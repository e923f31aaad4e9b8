import amqp from 'amqplib';
import { transaction, type Sql } from '../db/client';
import { queueMessageSchema } from '../queue/message';
import { assertTopology, type Topology } from '../queue/topology';
import { ERASED } from '../orders/erasure';


/** The forms one customer's number takes: "+1555…", "1555…" (Meta wa_id), "whatsapp:+1555…" (Twilio). */
export function addressVariants(phone: string): string[] {
  const bare = phone.replace(/^whatsapp:/, '');
  const digits = bare.replace(/^\+/, '');
  return [...new Set([phone, bare, digits, `+${digits}`, `whatsapp:+${digits}`, `whatsapp:${bare}`])];
}

/**
 * Data-subject erasure. Rows stay (dedupe keys, order totals, statistics) but every
 * personal field is removed or replaced: bodies, raw payloads, names, numbers, reply texts,
 * and copies of the customer's messages waiting in the dead-letter queue. Messages not yet
 * finished become 'erased', so the worker drops their queue copies instead of turning them
 * into an order and a reply, which would write the personal data back.
 */
export async function eraseCustomer(sql: Sql, amqpUrl: string | null, topology: Topology, phone: string): Promise<Record<string, number>> {
  const addresses = addressVariants(phone);
  const report = (await transaction(sql, async (tx) => {
    const messages = await tx`
      UPDATE webhook_messages SET payload = NULL, raw_body = NULL, phone_number = ${ERASED}, sender_key = ${ERASED}, updated_at = now(),
        status = CASE WHEN status IN ('queued', 'processing', 'rate_limited') THEN ${ERASED} ELSE status END
      WHERE phone_number = ANY(${addresses}) OR sender_key = ANY(${addresses})
         OR (payload ->> 'from') = ANY(${addresses}) OR (payload ->> 'senderKey') = ANY(${addresses})`;
    // Unfinished messages are not published any more (the relay drops such rows too).
    await tx`DELETE FROM outbox o USING webhook_messages m
             WHERE o.webhook_message_id = m.id AND m.status = ${ERASED} AND m.payload IS NULL`;
    const orders = await tx`
      UPDATE orders SET phone_number = ${ERASED}, sender_key = ${ERASED}, customer_name = NULL, updated_at = now()
      WHERE phone_number = ANY(${addresses}) OR sender_key = ANY(${addresses})`;
    const replies = await tx`
      UPDATE outbound_messages SET recipient = ${ERASED}, body = NULL, updated_at = now() WHERE recipient = ANY(${addresses})`;
    const receipts = await tx`
      UPDATE message_statuses SET recipient = NULL, payload = NULL WHERE recipient = ANY(${addresses})`;
    const limits = await tx`DELETE FROM webhook_rate_limits WHERE phone_number = ANY(${addresses})`;
    return { messages: messages.count, orders: orders.count, replies: replies.count, receipts: receipts.count, rate_limits: limits.count };
  })) as Record<string, number>;
  report.dead_letters = amqpUrl ? await dropDeadLetters(amqpUrl, topology, addresses) : 0;
  return report;
}

/** Acks (drops) the customer's dead letters; the rest go back when the channel closes. */
async function dropDeadLetters(amqpUrl: string, topology: Topology, addresses: string[]): Promise<number> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    await assertTopology(channel, topology);
    let dropped = 0;
    for (let message = await channel.get(topology.deadQueue); message; message = await channel.get(topology.deadQueue)) {
      let json: unknown = null;
      try {
        json = JSON.parse(message.content.toString('utf8'));
      } catch {
        // Not ours to judge; leave it.
      }
      const payload = queueMessageSchema.safeParse(json);
      if (payload.success && (addresses.includes(payload.data.from) || addresses.includes(payload.data.senderKey))) {
        channel.ack(message);
        dropped += 1;
      }
    }
    return dropped;
  } finally {
    await connection.close().catch(() => undefined);
  }
}
