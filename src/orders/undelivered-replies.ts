import type { Sql } from '../db/client';

/** A reply the provider accepted (200 or 201) and later reported it could not deliver. */
export interface UndeliveredReply {
  id: string;
  source: string;
  inbound_message_id: string;
  /** The provider's error code from the failed receipt: Meta's `errors[0].code`, Twilio's `ErrorCode`; null once its payload is no longer kept. */
  error_code: string | null;
  error_title: string | null;
  failed_at: Date | null;
  /** When the customer's message that this reply answers arrived: a free-form resend needs the customer to have written in the last 24 hours. */
  customer_wrote_at: Date | null;
}

/** The receipts that say a reply was accepted and not delivered: Meta's `failed`, Twilio's `failed` and `undelivered`. */
export const UNDELIVERED = ['failed', 'undelivered'] as const;

/**
 * Sent replies whose furthest receipt says failed, updated in the last `hours`, oldest first:
 * what `wagate replies undelivered` lists, and `wagate replies resend` may send again. Reads
 * the whole table (no index serves it: one on delivery_status would cost every receipt's update
 * its heap-only path), which an operator's command can afford.
 */
export async function listUndeliveredReplies(sql: Sql, hours: number): Promise<UndeliveredReply[]> {
  return sql<UndeliveredReply[]>`
    SELECT o.id::text, o.webhook_source AS source, o.inbound_message_id,
      coalesce(r.payload->'errors'->0->>'code', r.payload->>'ErrorCode') AS error_code,
      coalesce(r.payload->'errors'->0->>'title', r.payload->'errors'->0->>'message') AS error_title,
      r.created_at AS failed_at, m.created_at AS customer_wrote_at
    FROM outbound_messages o
    LEFT JOIN message_statuses r
      ON r.webhook_source = o.webhook_source AND r.message_id = o.provider_message_id AND r.status = o.delivery_status
    LEFT JOIN webhook_messages m ON m.webhook_source = o.webhook_source AND m.message_id = o.inbound_message_id
    WHERE o.status = 'sent' AND o.delivery_status = ANY(${[...UNDELIVERED]}::text[])
      AND o.updated_at > now() - make_interval(hours => ${hours}::integer)
    ORDER BY o.id`;
}
