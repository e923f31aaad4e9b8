import type { Sql } from '../db/client';
import { decide } from '../orders/decide';
import { deliverReply } from '../orders/deliver-reply';
import type { MatchOptions } from '../orders/match';
import type { ReplyTextOptions } from '../orders/reply-language';
import { findReply, outcomeOf, recordDecision } from '../orders/record-decision';
import type { ReplyClient } from '../replies/reply-clients';
import type { QueueMessage } from '../queue/message';
import type { Metrics } from '../telemetry/metrics';
import { withSpan } from '../telemetry/spans';

export interface PipelineDeps {
  sql: Sql;
  sendReply: ReplyClient;
  metrics: Metrics;
  match: MatchOptions;
  replyTexts: ReplyTextOptions;
}

export type ProcessOutcome = 'processed' | 'unmatched' | 'skipped';

/**
 * parse → match → order → confirm → status, for one queued message. Every step is
 * idempotent, because the broker delivers at least once: the claim skips finished
 * messages, the reply row marks a taken decision, and the send state stops a second call.
 */
export async function processMessage(deps: PipelineDeps, message: QueueMessage): Promise<ProcessOutcome> {
  const { sql } = deps;
  const [claimed] = await withSpan('wagate.claim', { 'db.system': 'postgresql' }, () => sql`
    UPDATE webhook_messages SET status = 'processing', attempts = attempts + 1, updated_at = now()
    WHERE webhook_source = ${message.source} AND message_id = ${message.messageId} AND status IN ('queued', 'processing')
    RETURNING id`);
  // Already finished (a redelivery), or erased or cleaned up since it was queued.
  if (!claimed) return 'skipped';

  let outbound = await findReply(sql, message);
  if (!outbound) {
    const decision = await withSpan('wagate.match', { 'db.system': 'postgresql' }, () => decide(sql, message, deps.match));
    const recorded = await withSpan('wagate.order.record', { 'wagate.decision': decision.kind, 'db.system': 'postgresql' }, () =>
      recordDecision(sql, message, decision, deps.replyTexts),
    );
    if (!recorded) return 'skipped';
    outbound = recorded.outbound;
    if (recorded.orderCreated) deps.metrics.ordersCreated.inc({ source: message.source });
  }
  const reply = outbound;
  await withSpan('wagate.reply.send', { 'wagate.provider': message.source, 'wagate.reply': reply.kind }, () =>
    deliverReply(sql, message.source, reply, deps.sendReply, deps.metrics),
  );
  const outcome = outcomeOf(outbound.kind);
  await withSpan('wagate.status', { 'db.system': 'postgresql', 'wagate.outcome': outcome }, () => sql`
    UPDATE webhook_messages SET status = ${outcome}, last_error = NULL, processed_at = now(), updated_at = now()
    WHERE webhook_source = ${message.source} AND message_id = ${message.messageId} AND status = 'processing'`);
  return outcome;
}
