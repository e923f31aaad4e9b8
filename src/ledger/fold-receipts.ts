import type { Source } from '../config';
import type { Sql } from '../db/client';

/** A provider message id whose receipts may not have reached its reply yet. */
export interface ReceiptKey {
  source: Source;
  providerMessageId: string;
}

/**
 * Moves each reply with one of these provider ids to its furthest stored receipt, forward
 * only (sent < delivered < read; failed is final), and clears the number and payload of the
 * receipts of an erased customer's reply. Returns how many replies moved.
 *
 * Run it after a commit, never inside the transaction that wrote the receipt or the provider
 * id: a receipt and the settle of its reply that commit at once each miss the other's row,
 * and only a statement that starts after both commits sees both. Both sides run it, so
 * whichever commits last repairs the pair (migrations/020). Replies are locked in id order,
 * as the batch write locks them, and only those that would move.
 */
export async function foldReceipts(sql: Sql, keys: readonly ReceiptKey[]): Promise<number> {
  if (keys.length === 0) return 0;
  const rows = await sql<{ id: string }[]>`
    WITH wanted AS (
      SELECT DISTINCT * FROM unnest(${keys.map((key) => key.source)}::text[], ${keys.map((key) => key.providerMessageId)}::text[])
        AS k(source, message_id)),
    furthest AS (
      SELECT DISTINCT ON (r.webhook_source, r.message_id) r.webhook_source, r.message_id, r.status
      FROM message_statuses r JOIN wanted k ON r.webhook_source = k.source AND r.message_id = k.message_id
      ORDER BY r.webhook_source, r.message_id, wagate_receipt_rank(r.status) DESC),
    locked AS MATERIALIZED (
      SELECT o.id, f.status
      FROM outbound_messages o JOIN furthest f ON o.webhook_source = f.webhook_source AND o.provider_message_id = f.message_id
      WHERE wagate_receipt_rank(f.status) > wagate_receipt_rank(o.delivery_status) AND wagate_receipt_rank(o.delivery_status) < 100
      ORDER BY o.id
      FOR UPDATE OF o),
    -- A receipt that reached an erased customer's reply only now, the provider id recorded after
    -- it (a settle after the erase of a reply under way, an operator's settle of an unknown one),
    -- keeps neither the number nor the payload, which would tie the number back to the reply:
    -- the batch write clears those of replies that held the id already. 'erased' is what
    -- wagate erase writes as the recipient (orders/erasure).
    unlinked AS (
      UPDATE message_statuses r SET recipient = NULL, payload = NULL
      FROM wanted k JOIN outbound_messages o ON o.webhook_source = k.source AND o.provider_message_id = k.message_id
      WHERE o.recipient = 'erased' AND r.webhook_source = k.source AND r.message_id = k.message_id
        AND (r.recipient IS NOT NULL OR r.payload IS NOT NULL))
    UPDATE outbound_messages o SET delivery_status = l.status, updated_at = now()
    FROM locked l
    WHERE o.id = l.id
      AND wagate_receipt_rank(l.status) > wagate_receipt_rank(o.delivery_status)
      AND wagate_receipt_rank(o.delivery_status) < 100
    RETURNING o.id::text`;
  return rows.length;
}
