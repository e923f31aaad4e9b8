import type { Source } from '../config';
import type { Sql } from '../db/client';
import { runWithDeadlockRetry } from './commit-guards';
import { TWILIO_REPLY_REFERENCE_PARAM } from './items';

/** A provider message id whose receipts may not have reached its reply yet. */
export interface ReceiptKey {
  source: Source;
  providerMessageId: string;
}

/**
 * What a reply is sent with, which the provider echoes in every receipt of the message (Meta's
 * `biz_opaque_callback_data`, a parameter of Twilio's status callback URL): the reply and the
 * attempt (its sending token) that sent it. A reply whose send answer was lost (unknown,
 * without a provider id) is found by it, and only by its last attempt's: a receipt of an earlier
 * attempt (one an operator resent after it failed, or after it was unknown) says nothing of the
 * last.
 */
export function replyReference(replyId: string, attempt: string): string {
  return `wagate:reply:${replyId}:${attempt}`;
}

/** The reply id and attempt in a receipt's reference, as replyReference writes them. */
const REPLY_REFERENCE = '^wagate:reply:([0-9]{1,18}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$';

/** The reference a stored receipt `r` carries, of either provider. */
const receiptReference = (sql: Sql) => sql`coalesce(r.payload->>'biz_opaque_callback_data', r.payload->>${TWILIO_REPLY_REFERENCE_PARAM}::text)`;

/** The last_error of an unknown reply that a receipt settled as sent. */
export const SETTLED_BY_RECEIPT = 'settled as sent by the provider\'s receipt: the answer to its send was lost, and the provider sent it';

/**
 * Moves each reply with one of these provider ids to its furthest stored receipt, forward
 * only (sent < delivered < read; failed is final), and clears the number and payload of the
 * receipts of an erased customer's reply. A receipt that names an unknown reply without a
 * provider id and the attempt it was left unknown by (replyReference) settles it as sent under
 * the receipt's message id: the provider sent it, and `wagate replies resend` would send it
 * twice. An erased customer's reply is left unknown, and the receipts that name it keep neither
 * number nor payload. Returns how many replies moved.
 *
 * Run it after a commit, never inside the transaction that wrote the receipt or the provider
 * id: a receipt and the settle of its reply that commit at once each miss the other's row,
 * and only a statement that starts after both commits sees both. Both sides run it, so
 * whichever commits last repairs the pair (migrations/020). Replies are locked in id order,
 * as the batch write locks them, and only those that would move: those holding a provider id,
 * then the unknown ones settled.
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
        AND (r.recipient IS NOT NULL OR r.payload IS NOT NULL)),
    -- So do the receipts that name an erased customer's reply that holds no provider id (one
    -- unknown, or under way when the erase ran): the batch write could not match them to it.
    unlinked_named AS (
      UPDATE message_statuses r SET recipient = NULL, payload = NULL
      FROM wanted k, outbound_messages o
      WHERE r.webhook_source = k.source AND r.message_id = k.message_id
        AND ${receiptReference(sql)} ~ ${REPLY_REFERENCE}
        AND o.id = substring(${receiptReference(sql)} from ${REPLY_REFERENCE})::bigint AND o.recipient = 'erased'),
    -- Unknown replies the receipts name, and the message id the provider sent each as. Disjoint
    -- from the replies above, which hold a provider id already; one id never goes to two replies.
    naming AS (
      SELECT DISTINCT f.webhook_source, f.message_id, f.status,
             substring(${receiptReference(sql)} from ${REPLY_REFERENCE})::bigint AS reply_id,
             (regexp_match(${receiptReference(sql)}, ${REPLY_REFERENCE}))[2]::uuid AS attempt
      FROM furthest f
      JOIN message_statuses r ON r.webhook_source = f.webhook_source AND r.message_id = f.message_id
      WHERE ${receiptReference(sql)} ~ ${REPLY_REFERENCE}),
    referenced AS MATERIALIZED (
      SELECT o.id, x.message_id, x.status
      FROM naming x JOIN outbound_messages o ON o.id = x.reply_id
      WHERE o.webhook_source = x.webhook_source AND o.status = 'unknown' AND o.provider_message_id IS NULL
        AND o.sending_attempt = x.attempt AND o.recipient <> 'erased'
        AND NOT EXISTS (SELECT 1 FROM outbound_messages y WHERE y.webhook_source = x.webhook_source AND y.provider_message_id = x.message_id)
      ORDER BY o.id
      FOR UPDATE OF o),
    settled AS (
      UPDATE outbound_messages o SET status = 'sent', provider_message_id = x.message_id, last_error = ${SETTLED_BY_RECEIPT},
        sending_attempt = NULL, updated_at = now(),
        delivery_status = CASE WHEN wagate_receipt_rank(x.status) > 0 THEN x.status ELSE o.delivery_status END
      FROM (SELECT DISTINCT ON (id) * FROM referenced ORDER BY id, message_id) x
      WHERE o.id = x.id AND o.status = 'unknown' AND o.provider_message_id IS NULL
      RETURNING o.id),
    folded AS (
      UPDATE outbound_messages o SET delivery_status = l.status, updated_at = now()
      FROM locked l
      WHERE o.id = l.id
        AND wagate_receipt_rank(l.status) > wagate_receipt_rank(o.delivery_status)
        AND wagate_receipt_rank(o.delivery_status) < 100
      RETURNING o.id)
    SELECT id::text FROM folded UNION ALL SELECT id::text FROM settled`;
  return rows.length;
}

/**
 * Folds in the stored receipts that name this reply's attempt (replyReference) and arrived
 * within the last `withinSeconds`: run once the reply is marked unknown. Its receipts often come
 * before that (Meta's 'sent' a second after it accepted the message, while the answer was
 * still on its way or lost), and no later fold of the ingest's would then see them; cleanup's
 * receipt repair would, hours later. By created_at, so that the lookup reads only recent rows.
 * True when the reply is sent now.
 */
export async function foldReceiptsNamingReply(sql: Sql, replyId: string, attempt: string, withinSeconds: number): Promise<boolean> {
  const receipts = await sql<ReceiptKey[]>`
    SELECT DISTINCT r.webhook_source AS source, r.message_id AS "providerMessageId" FROM message_statuses r
    WHERE r.created_at > now() - make_interval(secs => ${withinSeconds}) AND ${receiptReference(sql)} = ${replyReference(replyId, attempt)}`;
  if (receipts.length === 0) return false;
  await runWithDeadlockRetry(() => foldReceipts(sql, receipts));
  const [reply] = await sql<{ status: string }[]>`SELECT status FROM outbound_messages WHERE id = ${replyId}`;
  return reply?.status === 'sent';
}

/**
 * For a reply just marked unknown (a worker's orphaned send, its message's dead-lettering, an
 * abandoned resend) or about to be resent: folds in the stored receipts naming the attempt it
 * keeps. They came while it was still `sending` (its worker died after the provider took the
 * message), when no fold could settle it; the nightly repair would, but meanwhile it raised the
 * unknown-replies alert, and a resend sent the customer a second copy. `markedAt`: when the
 * attempt marked it `sending` (Postgres's text), as the workers' marks know it, so that only the
 * receipts since are read (by their created_at); null for an operator's resend, which reads
 * those of the reply's whole life rather than send a second copy. True when the reply is sent now.
 */
export async function foldReceiptsOfUnknownReply(sql: Sql, replyId: string, markedAt: string | null): Promise<boolean> {
  const [reply] = await sql<{ attempt: string; withinSeconds: number }[]>`
    SELECT sending_attempt::text AS attempt,
      extract(epoch FROM now() - coalesce(${markedAt}::text::timestamptz, created_at))::float8 AS "withinSeconds"
    FROM outbound_messages WHERE id = ${replyId} AND status = 'unknown' AND sending_attempt IS NOT NULL`;
  if (!reply) return false;
  return foldReceiptsNamingReply(sql, replyId, reply.attempt, reply.withinSeconds + RECEIPT_LOOKUP_MARGIN_SECONDS);
}

/** Slack past the mark: one clock (the database's), but a receipt's row is created after its provider sent it. */
const RECEIPT_LOOKUP_MARGIN_SECONDS = 60;
