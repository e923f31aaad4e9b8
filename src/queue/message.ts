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

export function amqpMessageId(source: string, messageId: string): string {
  return `${source}:${messageId}`;
}
