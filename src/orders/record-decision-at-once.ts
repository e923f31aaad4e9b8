import type { Sql } from '../db/client';
import { isForeignKeyViolation } from '../db/postgres-errors';
import type { QueueMessage } from '../queue/message';
import type { CatalogReader } from './catalog-cache';
import { textOf, type Decision } from './decide';
import { detectLanguage, REPLY_LANGUAGES, type ReplyLanguage } from './detect-language';
import type { DecisionOutcome, OutboundRow, ReplyKind } from './record-decision';
import { repliesIn } from './replies';
import type { ReplyTextOptions } from './reply-language';

/** Decisions whose reply does not depend on the customer's earlier orders: all but cancel and order status. */
export type SelfContainedDecision = Exclude<Decision, { kind: 'cancel' } | { kind: 'order_status' }>;

export function isSelfContained(decision: Decision): decision is SelfContainedDecision {
  return decision.kind !== 'cancel' && decision.kind !== 'order_status';
}

/** What the claim read about the message beforehand: the customer's remembered language. */
export interface KnownCustomer {
  language: string | null;
}

/**
 * The customer's reply language as chooseReplyLanguage picks it, from the language the claim
 * read: the message's own (to be remembered when it differs), else the remembered one, else the default.
 */
export function replyLanguageFor(message: QueueMessage, known: KnownCustomer, fallback: ReplyLanguage): { language: ReplyLanguage; remember: boolean } {
  const text = textOf(message, (message.content ?? {}) as Record<string, any>);
  const detected = text === undefined ? null : detectLanguage(text);
  if (detected) return { language: detected, remember: detected !== known.language };
  const remembered = (REPLY_LANGUAGES as readonly string[]).includes(known.language ?? '') ? (known.language as ReplyLanguage) : fallback;
  return { language: remembered, remember: false };
}

export interface RecordOptions {
  texts: ReplyTextOptions;
  known: KnownCustomer;
  catalog: CatalogReader;
  /** A new order id (drawOrderIds); the worker passes one that draws for many messages at once. */
  drawOrderId?(): Promise<string>;
}

/**
 * Order ids, drawn ahead of the insert that uses them, ascending: a sender's next message
 * draws after its previous one, so a later order always has the higher id (cancel and
 * order status take the sender's latest order by id).
 */
export async function drawOrderIds(sql: Sql, count: number): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id FROM generate_series(1, ${count}) ORDER BY 1`;
  return rows.map((row) => String(row.id));
}

/**
 * recordDecision in one statement, hence one round trip and one commit: the order and its
 * lines, the remembered language, and the reply, inserted already marked 'sending' (attempt 1)
 * so that no second commit is needed before the provider call. The message's row lock orders
 * it against `wagate erase` as recordDecision's does.
 *
 * Null when the message stopped being ours (erased since the claim); 'contended' when its
 * reply or order already exists (another worker got there during a hand-over): the caller
 * then takes recordDecision's path, which finds and uses them.
 */
export async function recordDecisionAtOnce(
  sql: Sql,
  message: QueueMessage,
  decision: SelfContainedDecision,
  { texts, known, catalog, drawOrderId = async () => (await drawOrderIds(sql, 1))[0]! }: RecordOptions,
): Promise<DecisionOutcome | null | 'contended'> {
  const { language, remember } = replyLanguageFor(message, known, texts.defaultLanguage);
  const replies = repliesIn(texts.catalogues[language]);
  // The confirmation names the order, so its id is drawn first; a draw not used leaves a gap, as a rollback would.
  const orderId = decision.kind === 'order' ? await drawOrderId() : null;
  const { kind, body } = await replyFor(decision, orderId, message, replies, catalog);
  const lines = decision.kind === 'order'
    ? decision.lines.map((l, i) => ({ line: i + 1, sku: l.product.sku, name: l.product.name, quantity: l.quantity, unit_price: l.product.price }))
    : [];
  const rows = await sql<(Partial<OutboundRow> & { processing: number; created: number })[]>`
    WITH msg AS (
      SELECT id FROM webhook_messages
      WHERE webhook_source = ${message.source} AND message_id = ${message.messageId} AND status = 'processing'
      FOR UPDATE),
    remembered AS (
      INSERT INTO customer_languages (webhook_source, sender_key, language)
      SELECT ${message.source}, ${message.senderKey}, ${language} FROM msg WHERE ${remember}::boolean
      ON CONFLICT (webhook_source, sender_key) DO UPDATE SET language = EXCLUDED.language, updated_at = now()),
    reply AS (
      INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, order_id, recipient, business_number, kind, body, status, attempts)
      SELECT ${`reply:${message.source}:${message.messageId}`}, ${message.source}, ${message.messageId}, ${orderId}::bigint,
             ${message.from}, ${message.business}, ${kind}, ${body}, 'sending', 1
      FROM msg
      ON CONFLICT DO NOTHING
      RETURNING id::text, kind, status, recipient, business_number, body, order_id::text, attempts),
    created AS (
      INSERT INTO orders (id, webhook_source, message_id, phone_number, sender_key, customer_name, total, currency)
      OVERRIDING SYSTEM VALUE
      SELECT ${orderId}::bigint, ${message.source}, ${message.messageId}, ${message.from}, ${message.senderKey}, ${message.contactName},
             ${decision.kind === 'order' ? decision.total : null}::numeric, ${decision.kind === 'order' ? decision.currency : null}
      FROM reply WHERE ${orderId}::bigint IS NOT NULL
      ON CONFLICT (webhook_source, message_id) DO NOTHING
      RETURNING id),
    items AS (
      INSERT INTO order_items (order_id, line, sku, name, quantity, unit_price)
      SELECT created.id, x.line, x.sku, x.name, x.quantity, x.unit_price::numeric
      FROM created CROSS JOIN jsonb_to_recordset(${JSON.stringify(lines)}::text::jsonb)
        AS x(line integer, sku text, name text, quantity integer, unit_price text))
    SELECT (SELECT count(*) FROM msg)::integer AS processing, (SELECT count(*) FROM created)::integer AS created, reply.*
    FROM (SELECT 1) AS one LEFT JOIN reply ON true`.catch((error: unknown) => {
    // An order that already existed without this reply leaves the reply naming an order id
    // that was never inserted: the foreign key fails the statement, and nothing is written.
    if (isForeignKeyViolation(error)) return 'contended' as const;
    throw error;
  });
  if (rows === 'contended') return rows;
  const row = rows[0];
  if (row!.processing === 0) return null;
  if (!row!.id) return 'contended';
  const { processing: _processing, created, ...outbound } = row!;
  return { outbound: outbound as OutboundRow, orderCreated: created > 0 };
}

async function replyFor(
  decision: SelfContainedDecision,
  orderId: string | null,
  message: QueueMessage,
  replies: ReturnType<typeof repliesIn>,
  catalog: CatalogReader,
): Promise<{ kind: ReplyKind; body: string }> {
  switch (decision.kind) {
    case 'order':
      return { kind: 'order_confirmation', body: replies.orderConfirmation(orderId!, message.contactName, decision.lines, decision.total, decision.currency) };
    case 'menu':
      return { kind: 'menu', body: replies.menu(await catalog.menu()) };
    case 'clarify':
      return { kind: 'clarification', body: replies.clarification(decision.problems) };
    case 'unsupported':
      return { kind: 'unsupported', body: replies.unsupported() };
  }
}
