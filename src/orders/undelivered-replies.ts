import type { Sql } from '../db/client';
import { ERASED } from './erasure';

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
   * WhatsApp's customer-service window: free-form messages reach a customer only within 24
   * hours of their latest message. 'unknown' when wagate no longer knows who the customer is
   * (retention deleted the message and the order, or the customer was erased).
   */
  window: 'open' | 'closed' | 'unknown';
  /** When an open window closes. */
  window_open_until: Date | null;
  /** False once retention or an erasure removed the reply's text: `wagate replies resend` refuses it then. */
  resendable: boolean;
}

const SERVICE_WINDOW_HOURS = 24;

/** The receipts that say a reply was accepted and not delivered: Meta's `failed`, Twilio's `failed` and `undelivered`. */
export const UNDELIVERED = ['failed', 'undelivered'] as const;

/**
 * Sent replies whose furthest receipt says failed, that failure received in the last `hours`
 * (the reply's own update time where the receipt is gone), oldest first: what `wagate replies
 * undelivered` lists, and `wagate replies resend` may send again. Found through their partial
 * index (migration 032, which holds only these replies; the predicate below is written as its
 * own so that the planner can use it), and the last day of messages for the window.
 */
export async function listUndeliveredReplies(sql: Sql, hours: number): Promise<UndeliveredReply[]> {
  return sql<UndeliveredReply[]>`
    WITH undelivered AS (
      SELECT o.id, o.webhook_source, o.inbound_message_id, o.provider_message_id, o.delivery_status, o.business_number, o.updated_at,
        o.body IS NOT NULL AND o.recipient <> ${ERASED} AS resendable,
        -- The customer, from the message answered or, once retention deleted it, from the order.
        nullif(coalesce(m.sender_key, ord.sender_key), ${ERASED}) AS sender_key
      FROM outbound_messages o
      LEFT JOIN webhook_messages m ON m.webhook_source = o.webhook_source AND m.message_id = o.inbound_message_id
      LEFT JOIN orders ord ON ord.id = o.order_id
      WHERE o.status = 'sent' AND o.delivery_status IN ('failed', 'undelivered')),
    -- The customer's latest message to the business number that sent the reply (the window is
    -- per customer and business number), by when they sent it where the provider says (Meta),
    -- never later than its arrival, else when it arrived; only the last day's can still hold the
    -- window open. A refused replay or a malformed body is no message of the customer's, nor is
    -- one written in a WhatsApp group: it opens no window for messages to them alone.
    latest AS (
      SELECT l.webhook_source, l.sender_key, l.business_number, max(least(coalesce(l.message_timestamp, l.created_at), l.created_at)) AS at
      FROM webhook_messages l
      WHERE l.created_at > now() - make_interval(hours => ${SERVICE_WINDOW_HOURS}::integer)
        AND l.status NOT IN ('malformed', 'replay_rejected')
        AND NOT coalesce(l.payload -> 'content' ? 'group_id', false)
        AND (l.webhook_source, l.sender_key) IN (SELECT webhook_source, sender_key FROM undelivered)
      GROUP BY 1, 2, 3),
    windows AS (
      SELECT u.*, latest.at + make_interval(hours => ${SERVICE_WINDOW_HOURS}::integer) AS closes
      FROM undelivered u LEFT JOIN latest
        ON latest.webhook_source = u.webhook_source AND latest.sender_key = u.sender_key AND latest.business_number = u.business_number)
    SELECT w.id::text, w.webhook_source AS source, w.inbound_message_id, w.resendable,
      coalesce(r.payload->'errors'->0->>'code', r.payload->>'ErrorCode') AS error_code,
      coalesce(r.payload->'errors'->0->>'title', r.payload->'errors'->0->>'message') AS error_title,
      r.created_at AS failed_at,
      CASE WHEN w.sender_key IS NULL THEN 'unknown' WHEN w.closes > now() THEN 'open' ELSE 'closed' END AS window,
      CASE WHEN w.closes > now() THEN w.closes END AS window_open_until
    FROM windows w
    LEFT JOIN message_statuses r
      ON r.webhook_source = w.webhook_source AND r.message_id = w.provider_message_id AND r.status = w.delivery_status
    -- An erasure or a cleanup touches the reply's update time, never its receipt's.
    WHERE coalesce(r.created_at, w.updated_at) > now() - make_interval(hours => ${hours}::integer)
    ORDER BY w.id`;
}
