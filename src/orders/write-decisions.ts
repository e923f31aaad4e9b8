import type { Sql } from '../db/client';
import { shardOf } from '../queue/topology';
import type { OutboundRow, ReplyKind } from './record-decision';

/** A decision ready to write: its reply's text is final, its order id (if any) already drawn. */
export interface DecisionWrite {
  source: 'whatsapp' | 'twilio';
  messageId: string;
  senderKey: string;
  recipient: string;
  business: string;
  contactName: string | null;
  /** The reply language, and whether to remember it for the customer. */
  language: string;
  rememberLanguage: boolean;
  kind: ReplyKind;
  body: string;
  order: { id: string; total: string; currency: string; lines: OrderItemWrite[]; note?: string | null } | null;
}

export interface OrderItemWrite {
  line: number;
  sku: string;
  name: string;
  quantity: number;
  unit_price: string;
}

/** The worker whose shards the writes must find recorded as its own (the worker's ShardFence). */
export interface DecisionFence {
  queuePrefix: string;
  memberId: string;
  shardCount: number;
}

/**
 * What a write did: nothing when the message is no longer 'processing' or its shard is no
 * longer the writing worker's; no reply when one already existed.
 */
export interface DecisionWritten {
  processing: boolean;
  /** Another worker holds the message's shard: nothing of it was written. */
  shardTaken: boolean;
  /** A product of its order changed or was switched off since the match (CATALOG_CHANGED): nothing of it was written. */
  catalogChanged: boolean;
  reply: OutboundRow | null;
  orderCreated: boolean;
}

type WrittenRow = { processing: boolean; ours: boolean; created: boolean; catalog_changed: boolean } & Omit<OutboundRow, 'id'> & { id: string | null };

/**
 * Writes decisions in one statement (one round trip, one commit), one or many messages at once.
 * An order is written only while every line's product is active at the price and in the
 * currency it was decided with: otherwise nothing of that message is, and it is decided again.
 * For each message still 'processing', under its row lock taken in id order (which orders the
 * write against `wagate erase` as recordDecision's transaction does): the remembered language,
 * the reply ('pending': a crash before it is marked 'sending' leaves it to be sent by the
 * redelivery), and, only if that reply is new, the order and its lines. A reply that already exists (another worker got there during a
 * hand-over) leaves that message's part unwritten. An order that already exists without its
 * reply would leave the new reply naming an order id never inserted: the foreign key then
 * fails the whole statement, and nothing of it is written.
 *
 * With a fence, a message is written only while its shard is recorded as the writing worker's,
 * and that record is share-locked before the message rows, as recordDecision's transaction
 * does, until the commit: a take of the shard waits for the write. A write that began with the
 * lease left and was then held up (a busy pool, a row lock) could otherwise commit after
 * another worker took the shard, beside its handling of the sender's next message.
 */
export async function writeDecisions(sql: Sql, writes: readonly DecisionWrite[], fence?: DecisionFence): Promise<DecisionWritten[]> {
  const ownedShards = fence
    ? sql`SELECT w.shard FROM work_shard_owners w
          WHERE w.queue_prefix = ${fence.queuePrefix} AND w.owner = ${fence.memberId} AND w.shard IN (SELECT shard FROM input)
          ORDER BY w.shard
          FOR SHARE OF w`
    : sql`SELECT DISTINCT shard FROM input`;
  const input = writes.map((w, index) => ({
    ord: index + 1, shard: fence ? shardOf(w.senderKey, fence.shardCount) : 0, source: w.source, message_id: w.messageId, sender_key: w.senderKey, recipient: w.recipient, business: w.business,
    contact_name: w.contactName, language: w.language, remember: w.rememberLanguage, kind: w.kind, body: w.body,
    order_id: w.order?.id ?? null, total: w.order?.total ?? null, currency: w.order?.currency ?? null, lines: w.order?.lines ?? [],
    note: w.order?.note ?? null,
  }));
  const rows = await sql<WrittenRow[]>`
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(${JSON.stringify(input)}::text::jsonb) AS i(
        ord integer, shard integer, source text, message_id text, sender_key text, recipient text, business text, contact_name text,
        language text, remember boolean, kind text, body text, order_id bigint, total text, currency text, lines jsonb, note text)),
    owned AS (${ownedShards}),
    catalog_changed AS (
      SELECT DISTINCT i.ord FROM input i CROSS JOIN jsonb_to_recordset(i.lines) AS x(sku text, unit_price text)
      WHERE i.order_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM products p WHERE p.sku = x.sku AND p.active AND p.price = x.unit_price::numeric AND p.currency = i.currency)),
    msg AS (
      SELECT i.ord FROM input i
      JOIN webhook_messages m ON m.webhook_source = i.source AND m.message_id = i.message_id
      WHERE m.status = 'processing' AND i.shard IN (SELECT shard FROM owned) AND i.ord NOT IN (SELECT ord FROM catalog_changed)
      ORDER BY m.id
      FOR UPDATE OF m),
    remembered AS (
      INSERT INTO customer_languages (webhook_source, sender_key, language)
      SELECT i.source, i.sender_key, i.language FROM input i JOIN msg ON msg.ord = i.ord WHERE i.remember
      ON CONFLICT (webhook_source, sender_key) DO UPDATE SET language = EXCLUDED.language, updated_at = now()),
    reply AS (
      INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, order_id, recipient, business_number, kind, body, status, attempts)
      SELECT 'reply:' || i.source || ':' || i.message_id, i.source, i.message_id, i.order_id, i.recipient, i.business, i.kind, i.body, 'pending', 0
      FROM input i JOIN msg ON msg.ord = i.ord
      ON CONFLICT DO NOTHING
      RETURNING id, webhook_source, inbound_message_id, kind, status, recipient, business_number, body, order_id, attempts),
    created AS (
      INSERT INTO orders (id, webhook_source, message_id, phone_number, sender_key, customer_name, total, currency, note)
      OVERRIDING SYSTEM VALUE
      SELECT i.order_id, i.source, i.message_id, i.recipient, i.sender_key, i.contact_name, i.total::numeric, i.currency, i.note
      FROM input i JOIN reply r ON r.webhook_source = i.source AND r.inbound_message_id = i.message_id
      WHERE i.order_id IS NOT NULL
      ON CONFLICT (webhook_source, message_id) DO NOTHING
      RETURNING id),
    items AS (
      INSERT INTO order_items (order_id, line, sku, name, quantity, unit_price)
      SELECT c.id, x.line, x.sku, x.name, x.quantity, x.unit_price::numeric
      FROM created c JOIN input i ON i.order_id = c.id
      CROSS JOIN jsonb_to_recordset(i.lines) AS x(line integer, sku text, name text, quantity integer, unit_price text))
    SELECT (msg.ord IS NOT NULL) AS processing, i.shard IN (SELECT shard FROM owned) AS ours, (c.id IS NOT NULL) AS created,
           i.ord IN (SELECT ord FROM catalog_changed) AS catalog_changed,
           r.id::text AS id, r.kind, r.status, r.recipient, r.business_number, r.body, r.order_id::text AS order_id, r.attempts
    FROM input i
    LEFT JOIN msg ON msg.ord = i.ord
    LEFT JOIN reply r ON r.webhook_source = i.source AND r.inbound_message_id = i.message_id
    LEFT JOIN created c ON c.id = i.order_id
    ORDER BY i.ord`;
  return rows.map(({ processing, ours, created, catalog_changed, ...reply }) => ({
    processing,
    shardTaken: !ours,
    catalogChanged: catalog_changed,
    orderCreated: created,
    reply: reply.id === null ? null : (reply as OutboundRow),
  }));
}
