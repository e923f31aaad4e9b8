import { RetryableError } from '../errors';
import type { Sql } from '../db/client';
import { failpoint } from '../failpoints';
import type { CatalogCache, CatalogReader } from '../orders/catalog-cache';
import { decide } from '../orders/decide';
import type { AnsweredDecision } from '../orders/decision';
import { deliverReply, finishMessage } from '../orders/deliver-reply';
import type { MatchOptions } from '../orders/match';
import type { ReplyTextOptions } from '../orders/reply-language';
import { isSelfContained, recordDecisionAtOnce } from '../orders/record-decision-at-once';
import { CATALOG_CHANGED, outcomeOf, recordDecision, SHARD_TAKEN, type OrderPolicy, type OutboundRow } from '../orders/record-decision';
import type { ReplyClient } from '../replies/reply-clients';
import type { QueueMessage } from '../queue/message';
import type { ReplySettlement } from '../orders/settle-replies';
import type { DecisionWrite, DecisionWritten } from '../orders/write-decisions';
import type { Metrics } from '../telemetry/metrics';
import { withSpan } from '../telemetry/spans';
import { shardOf } from '../queue/topology';
import { NOT_OURS, type Claim, type ShardFence } from './claim-messages';
import type { ShardLease } from './shard-lease';
import type { UnsentAttempts } from './unsent-attempts';
import { failUnsentErasedReply, type SendingMark } from '../orders/mark-sending';

export interface PipelineDeps {
  sql: Sql;
  sendReply: ReplyClient;
  metrics: Metrics;
  match: MatchOptions;
  replyTexts: ReplyTextOptions;
  orderPolicy: OrderPolicy;
  catalog: CatalogCache;
  /** Claims one message (claimMessages) at its delivery's try; the worker passes a micro-batcher shared by every sender chain. */
  claim(message: QueueMessage, attempt?: number): Promise<Claim | null | typeof NOT_OURS>;
  /** A new order id (drawOrderIds), batched the same way. */
  drawOrderId(): Promise<string>;
  /** Writes a decision's order and reply (writeDecisions), batched the same way. */
  writeDecision(write: DecisionWrite): Promise<DecisionWritten>;
  /** Marks a reply 'sending' before its provider call (markSending), batched the same way. */
  markSending(mark: SendingMark): Promise<boolean>;
  /** Writes a reply's settlement with its message's finish (settleReplies); batched the same way. */
  settle(settlement: ReplySettlement): Promise<void>;
  /**
   * The worker's lease on its shards (shardLease): whether a message may be claimed now, and
   * whether its decision's write and its provider call may start. A message refused any way
   * goes back to its queue unprocessed ('not_ours'). None outside a worker.
   */
  lease?: Pick<ShardLease, 'claim' | 'mayCall' | 'mayWrite'>;
  /** The shard records the worker's writes must find its own; the claims take it in their micro-batcher. None outside a worker. */
  fence?: ShardFence;
}

/** How many times one delivery decides a message whose order met a changed catalog at its write, before it goes to a retry tier. */
const MAX_DECISIONS_PER_DELIVERY = 3;

/** 'not_ours': unclaimed, since its shard was taken over meanwhile; its delivery goes back to the queue (see NOT_OURS). */
export type ProcessOutcome = 'processed' | 'unmatched' | 'skipped' | 'not_ours';

/**
 * parse → match → order → confirm → status, for one queued message. Every step is
 * idempotent, because the broker delivers at least once: the claim skips finished
 * messages, the reply row marks a taken decision, and the send state stops a second call.
 * The message's final status is written with its reply's last state, in one statement.
 * `unsent`: its earlier attempts that marked the reply and called nothing (UnsentAttempts).
 * `attempt`: the delivery's try, for the claim to skip a stale copy of a try handed to a retry tier.
 */
export async function processMessage(deps: PipelineDeps, message: QueueMessage, unsent?: UnsentAttempts, attempt = 0): Promise<ProcessOutcome> {
  const { sql } = deps;
  const tenure = deps.lease ? await deps.lease.claim() : null;
  if (deps.lease && tenure === null) return 'not_ours';
  const claim = await withSpan('wagate.claim', { 'db.system': 'postgresql' }, () => deps.claim(message, attempt));
  if (claim === NOT_OURS) return 'not_ours';
  // Already finished (a redelivery), erased or cleaned up since it was queued, or a stale copy
  // of a try that was handed to a retry tier.
  if (!claim) {
    if (unsent) await failUnsentErasedReply(sql, message.source, message.messageId, unsent.tokens);
    return 'skipped';
  }
  await failpoint('worker.after-claim');

  let outbound: OutboundRow | null = claim.reply;
  // A catalog import between the match and the write changed a product of the order: decided
  // again, its lines matched and priced afresh (matching reads products live).
  for (let decided = 1; !outbound; decided += 1) {
    const catalog = deps.catalog.at(claim.catalogVersion);
    const decision = await withSpan('wagate.match', { 'db.system': 'postgresql' }, () => decide(sql, message, deps.match, catalog));
    if (decision.kind === 'no_reply') {
      // Nothing is recorded but the status: a redelivered copy finds the message finished at its claim.
      await finishMessage(sql, message.source, { messageId: message.messageId, outcome: 'processed' });
      return 'processed';
    }
    if (deps.lease && !(await deps.lease.mayWrite(tenure!))) return 'not_ours';
    const recorded = await withSpan('wagate.order.record', { 'wagate.decision': decision.kind, 'db.system': 'postgresql' }, () =>
      record(deps, message, decision, claim, catalog),
    );
    if (recorded === SHARD_TAKEN) return 'not_ours';
    if (recorded === CATALOG_CHANGED) {
      if (decided < MAX_DECISIONS_PER_DELIVERY) continue;
      throw new RetryableError(`the catalog changed ${decided} times while the order of ${message.source}:${message.messageId} was being written; it is tried again from a retry tier`);
    }
    if (!recorded) return 'skipped';
    outbound = recorded;
    await failpoint('worker.after-record');
  }
  const reply = outbound;
  const outcome = outcomeOf(reply.kind);
  const finishing = {
    finish: { messageId: message.messageId, outcome },
    markSending: deps.markSending,
    settle: deps.settle,
    mayCall: deps.lease ? () => deps.lease!.mayCall(tenure!) : undefined,
    unsentAttempts: unsent?.tokens,
    onMarkUnanswered: unsent?.add,
  };
  const delivered = await withSpan('wagate.reply.send', { 'wagate.provider': message.source, 'wagate.reply': reply.kind }, () =>
    deliverReply(sql, message.source, reply, deps.sendReply, deps.metrics, finishing),
  );
  return delivered === 'given_back' ? 'not_ours' : outcome;
}

/**
 * A decision whose reply needs nothing but the message and the catalog is recorded in one
 * statement shared with other senders' messages; cancel and order status read and change the
 * customer's orders, and take recordDecision's transaction, as does a contended record.
 */
async function record(deps: PipelineDeps, message: QueueMessage, decision: AnsweredDecision, claim: Claim, catalog: CatalogReader): Promise<OutboundRow | null | typeof SHARD_TAKEN | typeof CATALOG_CHANGED> {
  if (isSelfContained(decision)) {
    const once = await recordDecisionAtOnce(deps.sql, message, decision, {
      texts: deps.replyTexts,
      known: claim,
      catalog,
      drawOrderId: deps.drawOrderId,
      write: deps.writeDecision,
    });
    if (once === null || once === SHARD_TAKEN || once === CATALOG_CHANGED) return once;
    if (once !== 'contended') {
      if (once.orderCreated) deps.metrics.ordersCreated.inc({ source: message.source });
      return once.outbound;
    }
  }
  const fence = deps.fence && {
    queuePrefix: deps.fence.queuePrefix,
    memberId: deps.fence.memberId,
    shard: shardOf(message.senderKey, deps.fence.shardCount),
    idleLimitMs: deps.fence.idleLimitMs,
  };
  const recorded = await recordDecision(deps.sql, message, decision, deps.replyTexts, deps.orderPolicy, fence);
  if (!recorded || recorded === SHARD_TAKEN || recorded === CATALOG_CHANGED) return recorded;
  if (recorded.orderCreated) deps.metrics.ordersCreated.inc({ source: message.source });
  return recorded.outbound;
}
