import type { Sql } from '../db/client';
import { isForeignKeyViolation } from '../db/postgres-errors';
import type { QueueMessage } from '../queue/message';
import type { CatalogReader } from './catalog-cache';
import { textOf } from './decide';
import type { AnsweredDecision } from './decision';
import { detectLanguage, REPLY_LANGUAGES, type ReplyLanguage } from './detect-language';
import { CATALOG_CHANGED, SHARD_TAKEN, type DecisionOutcome, type ReplyKind } from './record-decision';
import { writeDecisions, type DecisionWrite, type DecisionWritten } from './write-decisions';
import { repliesIn } from './replies';
import type { ReplyTextOptions } from './reply-language';

/** Decisions whose reply does not depend on the customer's earlier orders: all but cancel and order status. */
export type SelfContainedDecision = Exclude<AnsweredDecision, { kind: 'cancel' } | { kind: 'order_status' }>;

export function isSelfContained(decision: AnsweredDecision): decision is SelfContainedDecision {
  return decision.kind !== 'cancel' && decision.kind !== 'order_status';
}

/** What the claim read about the message beforehand: the customer's remembered language. */
export interface KnownCustomer {
  language: string | null;
  /** The language was remembered more than a day ago: used again, it is written again. */
  languageStale?: boolean;
}

/**
 * The customer's reply language as chooseReplyLanguage picks it, from the language the claim
 * read: the message's own (to be remembered when it differs), else the remembered one, else the
 * default; remembered again, too, once a day while it is used.
 */
export function replyLanguageFor(message: QueueMessage, known: KnownCustomer, fallback: ReplyLanguage): { language: ReplyLanguage; remember: boolean } {
  const text = textOf(message, (message.content ?? {}) as Record<string, any>);
  const detected = text === undefined ? null : detectLanguage(text);
  // Written again when it changes, and once a day while it is used: cleanup forgets the language
  // of customers silent for its retention, judged by when it was last written.
  const stale = known.languageStale === true;
  if (detected) return { language: detected, remember: detected !== known.language || stale };
  const usable = (REPLY_LANGUAGES as readonly string[]).includes(known.language ?? '');
  return { language: usable ? (known.language as ReplyLanguage) : fallback, remember: usable && stale };
}

export interface RecordOptions {
  texts: ReplyTextOptions;
  known: KnownCustomer;
  catalog: CatalogReader;
  /** A new order id (drawOrderIds); the worker passes one that draws for many messages at once. */
  drawOrderId?(): Promise<string>;
  /** Writes the decision (writeDecisions); the worker passes one that writes many messages' at once. */
  write?(decision: DecisionWrite): Promise<DecisionWritten>;
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
 * recordDecision in one statement (writeDecisions), hence one round trip and one commit: the
 * order and its lines, the remembered language, and the reply.
 *
 * Null when the message stopped being ours (erased since the claim); SHARD_TAKEN when another
 * worker took its shard (the writer's fence); CATALOG_CHANGED when a product of its order
 * changed since the match; 'contended' when its reply or order already
 * exists (another worker got there during a hand-over): the caller then takes
 * recordDecision's path, which finds and uses them.
 */
export async function recordDecisionAtOnce(
  sql: Sql,
  message: QueueMessage,
  decision: SelfContainedDecision,
  options: RecordOptions,
): Promise<DecisionOutcome | null | typeof SHARD_TAKEN | typeof CATALOG_CHANGED | 'contended'> {
  const { texts, known, catalog } = options;
  const drawOrderId = options.drawOrderId ?? (async () => (await drawOrderIds(sql, 1))[0]!);
  const write = options.write ?? (async (each: DecisionWrite) => (await writeDecisions(sql, [each]))[0]!);
  const { language, remember } = replyLanguageFor(message, known, texts.defaultLanguage);
  const replies = repliesIn(texts.catalogues[language]);
  // The confirmation names the order, so its id is drawn first; a draw not used leaves a gap, as a rollback would.
  const orderId = decision.kind === 'order' ? await drawOrderId() : null;
  const { kind, body } = await replyFor(decision, orderId, message, replies, catalog);
  const order = decision.kind === 'order'
    ? {
        id: orderId!,
        total: decision.total,
        currency: decision.currency,
        lines: decision.lines.map((l, i) => ({ line: i + 1, sku: l.product.sku, name: l.product.name, quantity: l.quantity, unit_price: l.product.price })),
        note: decision.note ?? null,
      }
    : null;
  const written = await write({
    source: message.source, messageId: message.messageId, senderKey: message.senderKey, recipient: message.from,
    business: message.business, contactName: message.contactName, language, rememberLanguage: remember, kind, body, order,
  }).catch((error: unknown) => {
    if (isForeignKeyViolation(error)) return 'contended' as const;
    throw error;
  });
  if (written === 'contended') return written;
  if (written.shardTaken) return SHARD_TAKEN;
  if (written.catalogChanged) return CATALOG_CHANGED;
  if (!written.processing) return null;
  if (!written.reply) return 'contended';
  return { outbound: written.reply, orderCreated: written.orderCreated };
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
