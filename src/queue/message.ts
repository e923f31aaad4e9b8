import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * The contract between ingest and worker: everything the worker needs, so that it never
 * has to go back to the provider or to the raw webhook.
 */
export const queueMessageSchema = z.object({
  v: z.literal(1),
  source: z.enum(['whatsapp', 'twilio']),
  messageId: z.string().min(1),
  /** The customer's address: wa_id / phone for Meta, "whatsapp:+..." for Twilio. */
  from: z.string().min(1),
  /** Rate-limit and ordering key: Meta's business-scoped user_id when present. */
  senderKey: z.string().min(1),
  /** The business number that received it: Meta phone_number_id or Twilio To. */
  business: z.string().min(1),
  contactName: z.string().nullable(),
  type: z.string().min(1),
  timestampSeconds: z.number().nullable(),
  receivedAt: z.string(),
  /** The provider's message object as received. */
  content: z.unknown(),
});

export type QueueMessage = z.infer<typeof queueMessageSchema>;

/** AMQP's message-id is a short string: amqplib refuses a longer one before anything is sent. */
const AMQP_SHORT_STRING_MAX_BYTES = 255;

/**
 * source:message_id, or, for an id too long for AMQP (the webhook schemas take up to 256
 * characters, and Meta documents no maximum), source:sha256:<hex of the id>, so that such a
 * message is published like any other instead of failing every publish and staying in the outbox.
 */
export function amqpMessageId(source: string, messageId: string): string {
  const id = `${source}:${messageId}`;
  if (Buffer.byteLength(id) <= AMQP_SHORT_STRING_MAX_BYTES) return id;
  return `${source}:sha256:${createHash('sha256').update(messageId).digest('hex')}`;
}
