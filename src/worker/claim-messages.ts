import type { Sql } from '../db/client';
import type { OutboundRow } from '../orders/record-decision';
import type { QueueMessage } from '../queue/message';

/** What the pipeline needs to know about a message it has claimed, read with the claim itself. */
export interface Claim {
  /** The message's reply, when an earlier attempt already took its decision. */
  reply: OutboundRow | null;
  /** The language the customer last wrote in, if any. */
  language: string | null;
  /** catalog_version as of the claim, for the worker's in-memory catalog. */
  catalogVersion: string;
}

interface ClaimRow {
  ord: number;
  reply_id: string | null;
  kind: OutboundRow['kind'];
  status: OutboundRow['status'];
  recipient: string;
  business_number: string;
  body: string;
  order_id: string | null;
  attempts: number;
  language: string | null;
  catalog_version: string;
}

/**
 * Claims messages for processing ('processing', one more attempt) in one statement, and reads
 * with it what the pipeline would otherwise ask for one query at a time: each message's reply
 * (the marker that its decision was taken), its customer's remembered language and the
 * catalog's version. Null for a message already finished (a redelivery), erased or cleaned up
 * since it was queued. The reads share the claim's snapshot, as the separate reads that
 * followed the claim's commit saw the same rows or later ones; the record step checks again
 * under the message's row lock.
 */
export async function claimMessages(sql: Sql, messages: readonly QueueMessage[]): Promise<(Claim | null)[]> {
  const rows = await sql<ClaimRow[]>`
    WITH input AS (
      SELECT * FROM unnest(${messages.map((m) => m.source)}::text[], ${messages.map((m) => m.messageId)}::text[],
                           ${messages.map((m) => m.senderKey)}::text[]) WITH ORDINALITY AS i(source, message_id, sender_key, ord)),
    claimed AS (
      UPDATE webhook_messages m SET status = 'processing', attempts = m.attempts + 1, updated_at = now()
      FROM input i
      WHERE m.webhook_source = i.source AND m.message_id = i.message_id AND m.status IN ('queued', 'processing')
      RETURNING i.ord)
    SELECT i.ord::integer AS ord, o.id::text AS reply_id, o.kind, o.status, o.recipient, o.business_number, o.body,
           o.order_id::text AS order_id, o.attempts, l.language, (SELECT version::text FROM catalog_version) AS catalog_version
    FROM claimed c
    JOIN input i ON i.ord = c.ord
    LEFT JOIN outbound_messages o ON o.webhook_source = i.source AND o.inbound_message_id = i.message_id
    LEFT JOIN customer_languages l ON l.webhook_source = i.source AND l.sender_key = i.sender_key`;
  const claims: (Claim | null)[] = messages.map(() => null);
  for (const row of rows) {
    const reply = row.reply_id === null ? null : {
      id: row.reply_id, kind: row.kind, status: row.status, recipient: row.recipient, business_number: row.business_number,
      body: row.body, order_id: row.order_id, attempts: row.attempts,
    };
    claims[row.ord - 1] = { reply, language: row.language, catalogVersion: row.catalog_version };
  }
  return claims;
}
