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
  /**
   * Until when a free-form reply may reach the customer: 24 hours after their latest message
   * (WhatsApp's customer-service window); null once it has closed.
   */
  window_open_until: Date | null;
}

/** WhatsApp's customer-service window: free-form messages only within 24 hours of the customer's last one. */
const SERVICE_WINDOW_HOURS = 24;

/** The receipts that say a reply was accepted and not delivered: Meta's `failed`, Twilio's `failed` and `undelivered`. */
export const UNDELIVERED = ['failed', 'undelivered'] as const;

/**
 * Sent replies whose furthest receipt says failed, updated in the last `hours`, oldest first:
 * what `wagate replies undelivered` lists, and `wagate replies resend` may send again. Reads
 * the whole table (no index serves it: one on delivery_status would cost every receipt's update
 * its heap-only path), and the last day of messages for the window, which an operator's command
 * can afford.
 */
export async function listUndeliveredReplies(sql: Sql, hours: number): Promise<UndeliveredReply[]> {
  return sql<UndeliveredReply[]>`
    WITH undelivered AS (
      SELECT o.id, o.webhook_source, o.inbound_message_id, o.provider_message_id, o.delivery_status, m.sender_key
      FROM outbound_messages o
      LEFT JOIN webhook_messages m ON m.webhook_source = o.webhook_source AND m.message_id = o.inbound_message_id
      WHERE o.status = 'sent' AND o.delivery_status = ANY(${[...UNDELIVERED]}::text[])
        AND o.updated_at > now() - make_interval(hours => ${hours}::integer)),
    -- The customer's latest message, by when they sent it where the provider says (Meta), else
    -- when it arrived; only the last day's can still hold the window open.
    latest AS (
      SELECT l.webhook_source, l.sender_key, max(coalesce(l.message_timestamp, l.created_at)) AS at
      FROM webhook_messages l
      WHERE l.created_at > now() - make_interval(hours => ${SERVICE_WINDOW_HOURS}::integer)
        AND (l.webhook_source, l.sender_key) IN (SELECT webhook_source, sender_key FROM undelivered)
      GROUP BY 1, 2)
    SELECT u.id::text, u.webhook_source AS source, u.inbound_message_id,
      coalesce(r.payload->'errors'->0->>'code', r.payload->>'ErrorCode') AS error_code,
      coalesce(r.payload->'errors'->0->>'title', r.payload->'errors'->0->>'message') AS error_title,
      r.created_at AS failed_at,
      CASE WHEN latest.at + make_interval(hours => ${SERVICE_WINDOW_HOURS}::integer) > now()
        THEN latest.at + make_interval(hours => ${SERVICE_WINDOW_HOURS}::integer) END AS window_open_until
    FROM undelivered u
    LEFT JOIN message_statuses r
      ON r.webhook_source = u.webhook_source AND r.message_id = u.provider_message_id AND r.status = u.delivery_status
    LEFT JOIN latest ON latest.webhook_source = u.webhook_source AND latest.sender_key = u.sender_key
    ORDER BY u.id`;
}
