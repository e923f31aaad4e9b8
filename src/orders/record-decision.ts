import { transaction, type Sql } from '../db/client';
import type { QueueMessage } from '../queue/message';
import type { AnsweredDecision, Decision } from './decision';
import { listMenu } from './match';
import { textOf } from './decide';
import { repliesIn, type Replies } from './replies';
import { chooseReplyLanguage, type ReplyTextOptions } from './reply-language';
import { failpoint } from '../failpoints';

export type ReplyKind = 'order_confirmation' | 'cancel_confirmation' | 'order_status' | 'menu' | 'clarification' | 'unsupported';

export interface OutboundRow {
  id: string;
  kind: ReplyKind;
  status: 'pending' | 'sending' | 'sent' | 'retry' | 'failed' | 'unknown';
  recipient: string;
  business_number: string;
  body: string;
  order_id: string | null;
  attempts: number;
}

/** Messages that got what they asked for are processed; the rest are unmatched. */
export function outcomeOf(kind: ReplyKind): 'processed' | 'unmatched' {
  return kind === 'clarification' || kind === 'unsupported' ? 'unmatched' : 'processed';
}

export type DecisionOutcome = { outbound: OutboundRow; orderCreated: boolean };

/**
 * Applies a decision and records its one reply in a single transaction. The reply row is
 * the marker that the decision was taken: a redelivered message finds it and goes straight
 * to sending, so an order, a cancellation or a reply never happens twice.
 */
export async function findReply(sql: Sql, message: QueueMessage): Promise<OutboundRow | undefined> {
  const [row] = await sql<OutboundRow[]>`
    SELECT id::text, kind, status, recipient, business_number, body, order_id::text, attempts
    FROM outbound_messages WHERE webhook_source = ${message.source} AND inbound_message_id = ${message.messageId}`;
  return row;
}

/** The shard record a write must find the worker's, under a share lock held until its commit. */
export interface OwnerFence {
  queuePrefix: string;
  memberId: string;
  shard: number;
  /**
   * How long Postgres lets this transaction sit idle between statements before it ends the
   * session. A worker gone without a reset (its node lost, its network cut) would otherwise
   * leave the session idle in transaction until the server's TCP keepalive gives up, two
   * hours by default, its share lock holding back every take of the shard. Kept below the
   * liveness timeout where that leaves at least 5 s, so the lock is gone by the time another
   * worker may take the shard; below that, the take waits for the rest of this limit.
   */
  idleLimitMs?: number;
}

/** The message's shard is no longer the writing worker's: nothing was written. */
export const SHARD_TAKEN = Symbol('shard taken');

/**
 * A product of the order changed price or currency, or was switched off, between the match and
 * the write (a catalog import): nothing was written, and the message is to be decided again.
 */
export const CATALOG_CHANGED = Symbol('catalog changed');

/**
 * Null when the message stopped being ours to process (erased since it was claimed);
 * CATALOG_CHANGED when a product of its order changed since the decision (nothing written);
 * SHARD_TAKEN when another worker took its shard (`fence`). The fence's share lock holds a
 * take back until this transaction has committed: a cancel begun with the lease left could
 * otherwise, waiting on a connection or a row lock, commit after the take, beside the new
 * holder's handling of the sender's next message.
 */
export async function recordDecision(
  sql: Sql,
  message: QueueMessage,
  decision: AnsweredDecision,
  texts: ReplyTextOptions,
  policy: OrderPolicy,
  fence?: OwnerFence,
): Promise<DecisionOutcome | null | typeof SHARD_TAKEN | typeof CATALOG_CHANGED> {
  return (await transaction(sql, async (tx) => {
    if (fence) {
      // Set in the fence's own statement, for this transaction alone: a startup parameter
      // would be refused by PgBouncer, and a statement of its own would cost a round trip. A
      // stricter limit the server or role already sets is kept (its setting is in ms; 0 is none).
      const [ours] = await tx`
        SELECT set_config('idle_in_transaction_session_timeout',
                          coalesce(least(${fence.idleLimitMs ?? null}::integer, nullif(current.setting::integer, 0))::text, current.setting), true)
        FROM work_shard_owners,
             (SELECT setting FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout') AS current
        WHERE queue_prefix = ${fence.queuePrefix} AND shard = ${fence.shard} AND owner = ${fence.memberId}
        FOR SHARE OF work_shard_owners`;
      if (!ours) return SHARD_TAKEN;
      await failpoint('worker.in-decision');
    }
    // The row lock orders this against `wagate erase`: either erasure waits and then
    // anonymises what is written here, or it came first and nothing is written.
    const [processing] = await tx`
      SELECT 1 FROM webhook_messages
      WHERE webhook_source = ${message.source} AND message_id = ${message.messageId} AND status = 'processing'
      FOR UPDATE`;
    if (!processing) return null;
    const existing = await findReply(tx, message);
    if (existing) return { outbound: existing, orderCreated: false };
    if (decision.kind === 'order' && !(await pricedAsDecided(tx, decision))) return CATALOG_CHANGED;
    const language = await chooseReplyLanguage(tx, message, textOf(message, (message.content ?? {}) as Record<string, any>), texts.defaultLanguage);
    const { kind, body, orderId, orderCreated } = await applyDecision(tx, message, decision, repliesIn(texts.catalogues[language]), policy);
    const [outbound] = await tx<OutboundRow[]>`
      INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, order_id, recipient, business_number, kind, body)
      VALUES (${`reply:${message.source}:${message.messageId}`}, ${message.source}, ${message.messageId}, ${orderId},
              ${message.from}, ${message.business}, ${kind}, ${body})
      RETURNING id::text, kind, status, recipient, business_number, body, order_id::text, attempts`;
    return { outbound: outbound!, orderCreated };
  })) as DecisionOutcome | null | typeof SHARD_TAKEN | typeof CATALOG_CHANGED;
}

/**
 * Every line's product is still active, at the price and in the currency the decision used.
 * No lock is taken: an import committed while the order is written overlaps it, and either may
 * count as first; share locks here would deadlock against an import's updates in its own order.
 */
async function pricedAsDecided(tx: Sql, decision: Extract<Decision, { kind: 'order' }>): Promise<boolean> {
  const lines = decision.lines.map((l) => ({ sku: l.product.sku, price: l.product.price }));
  const matching = await tx<{ sku: string }[]>`
    SELECT p.sku FROM products p
    JOIN jsonb_to_recordset(${JSON.stringify(lines)}::text::jsonb) AS x(sku text, price text) ON p.sku = x.sku
    WHERE p.active AND p.price = x.price::numeric AND p.currency = ${decision.currency}`;
  return new Set(matching.map((row) => row.sku)).size === new Set(lines.map((line) => line.sku)).size;
}

interface Applied {
  kind: ReplyKind;
  body: string;
  orderId: string | null;
  orderCreated: boolean;
}

export interface OrderPolicy {
  /** How long after it was placed the newest order can be cancelled by a message (ORDER_CANCEL_WINDOW_HOURS); 0 for any age. */
  cancelWindowHours: number;
  /** How long an unfinished message may go untouched before it counts as stuck (stuckAfterMs): no longer on its way. */
  stuckAfterMs: number;
}

async function applyDecision(tx: Sql, message: QueueMessage, decision: AnsweredDecision, replies: Replies, policy: OrderPolicy): Promise<Applied> {
  const none = { orderId: null, orderCreated: false };
  switch (decision.kind) {
    case 'order':
      return createOrder(tx, message, decision, replies);
    case 'cancel': {
      // Only the newest order, and only while it is young: orders stay open (wagate does not
      // learn of a delivery), so a second "cancel", or one sent days later, used to reach back
      // and cancel an earlier order the customer had long received. The reply says which case it is.
      // Newest among the orders of messages that arrived before the cancel (ledger ids follow
      // arrival): a cancel retried after Postgres came back must not reach the order the
      // customer placed meanwhile. An order whose message row is gone (cleanup) is older; the
      // newest is the one whose message arrived last, not the one written last, since a message
      // back from a retry tier writes its order after a later one's.
      if (await earlierStillUnanswered(tx, message, policy)) return { kind: 'cancel_confirmation', body: replies.cancelEarlierUnanswered(), ...none };
      const [newest] = await tx<{ id: string; status: string; young: boolean }[]>`
        SELECT orders.id::text AS id, orders.status,
               (${policy.cancelWindowHours}::integer = 0 OR orders.created_at > now() - make_interval(hours => ${policy.cancelWindowHours}::integer)) AS young
        FROM orders
        LEFT JOIN webhook_messages placed ON placed.webhook_source = orders.webhook_source AND placed.message_id = orders.message_id
        WHERE orders.webhook_source = ${message.source} AND orders.sender_key = ${message.senderKey}
          AND (placed.id IS NULL OR placed.id < (SELECT id FROM webhook_messages WHERE webhook_source = ${message.source} AND message_id = ${message.messageId}))
        ORDER BY placed.id DESC NULLS LAST, orders.id DESC LIMIT 1 FOR UPDATE OF orders`;
      if (!newest) return { kind: 'cancel_confirmation', body: replies.nothingToCancel(), ...none };
      if (newest.status !== 'open') return { kind: 'cancel_confirmation', body: replies.cancelNotOpen(newest.id, newest.status), ...none };
      if (!newest.young) return { kind: 'cancel_confirmation', body: replies.cancelTooLate(newest.id), ...none };
      await tx`
        UPDATE orders SET status = 'cancelled', cancelled_by_message_id = ${message.messageId}, updated_at = now()
        WHERE id = ${newest.id}::bigint`;
      return { kind: 'cancel_confirmation', body: replies.cancelled(newest.id), orderId: newest.id, orderCreated: false };
    }
    case 'order_status': {
      // Not while an earlier message is still on its way, as for a cancel: it may be the order
      // asked about, and the answer named the one before it, or said there was none.
      if (await earlierStillUnanswered(tx, message, policy)) return { kind: 'order_status', body: replies.statusEarlierUnanswered(), ...none };
      // The newest as a cancel takes it: by its message's arrival, among those that arrived
      // before the question, so both name the same order.
      const [order] = await tx<{ id: string; status: string; total: string; currency: string }[]>`
        SELECT orders.id::text AS id, orders.status, orders.total::text AS total, orders.currency FROM orders
        LEFT JOIN webhook_messages placed ON placed.webhook_source = orders.webhook_source AND placed.message_id = orders.message_id
        WHERE orders.webhook_source = ${message.source} AND orders.sender_key = ${message.senderKey}
          AND (placed.id IS NULL OR placed.id < (SELECT id FROM webhook_messages WHERE webhook_source = ${message.source} AND message_id = ${message.messageId}))
        -- orders.id, the number: a bare "id" is the output column, id::text, and sorted as text
        -- it took order 998 for newer than 1002.
        ORDER BY placed.id DESC NULLS LAST, orders.id DESC LIMIT 1`;
      return order
        ? { kind: 'order_status', body: replies.orderStatus(order.id, order.status, order.total, order.currency), orderId: order.id, orderCreated: false }
        : { kind: 'order_status', body: replies.noOrders(), ...none };
    }
    case 'menu':
      return { kind: 'menu', body: replies.menu(await listMenu(tx)), ...none };
    case 'clarify':
      return { kind: 'clarification', body: replies.clarification(decision.problems), ...none };
    case 'unsupported':
      return { kind: 'unsupported', body: replies.unsupported(), ...none };
  }
}

/**
 * Whether a message the sender sent before this one is still queued or processing with no
 * reply recorded: one waiting in a retry tier (Postgres away, a statement timeout, a catalog
 * changing under it), which no longer holds the sender's later messages back. It may be the
 * order a cancel is meant for, and the cancel would reach the order before it instead, or the
 * one a status question asks about. One untouched for longer than a stuck message is not on its
 * way (its dead write failed, its queue copy was lost): counted, it had the customer told to
 * ask again until an operator requeued it. Through the index of unfinished messages by sender
 * (migration 044), so the cost is the sender's own.
 */
async function earlierStillUnanswered(tx: Sql, message: QueueMessage, policy: OrderPolicy): Promise<boolean> {
  const [earlier] = await tx`
    SELECT 1 FROM webhook_messages earlier
    WHERE wagate_unfinished(earlier.status)
      AND earlier.webhook_source = ${message.source} AND earlier.sender_key = ${message.senderKey}
      AND earlier.id < (SELECT id FROM webhook_messages WHERE webhook_source = ${message.source} AND message_id = ${message.messageId})
      AND earlier.updated_at > now() - make_interval(secs => ${policy.stuckAfterMs / 1000})
      AND NOT EXISTS (SELECT 1 FROM outbound_messages reply WHERE reply.webhook_source = earlier.webhook_source AND reply.inbound_message_id = earlier.message_id)
    LIMIT 1`;
  return earlier !== undefined;
}

async function createOrder(tx: Sql, message: QueueMessage, decision: Extract<Decision, { kind: 'order' }>, replies: Replies): Promise<Applied> {
  const [order] = await tx<{ id: string }[]>`
    INSERT INTO orders (webhook_source, message_id, phone_number, sender_key, customer_name, total, currency, note)
    VALUES (${message.source}, ${message.messageId}, ${message.from}, ${message.senderKey}, ${message.contactName},
            ${decision.total}::numeric, ${decision.currency}, ${decision.note ?? null})
    ON CONFLICT (webhook_source, message_id) DO NOTHING
    RETURNING id::text`;
  const orderId =
    order?.id ??
    (await tx<{ id: string }[]>`SELECT id::text FROM orders WHERE webhook_source = ${message.source} AND message_id = ${message.messageId}`)[0]!.id;
  if (order) {
    await tx`
      INSERT INTO order_items (order_id, line, sku, name, quantity, unit_price)
      SELECT ${orderId}::bigint, line, sku, name, quantity, unit_price::numeric
      FROM jsonb_to_recordset(${JSON.stringify(
        decision.lines.map((l, i) => ({ line: i + 1, sku: l.product.sku, name: l.product.name, quantity: l.quantity, unit_price: l.product.price })),
      )}::text::jsonb) AS x(line integer, sku text, name text, quantity integer, unit_price text)`;
  }
  return {
    kind: 'order_confirmation',
    body: replies.orderConfirmation(orderId, message.contactName, decision.lines, decision.total, decision.currency),
    orderId,
    orderCreated: Boolean(order),
  };
}
