import type { Sql } from '../db/client';
import { timerOf, type StallWatch } from '../db/stall-watch';
import { settleReplies, type ReplySettlement } from '../orders/settle-replies';
import { markSending, type SendingMark } from '../orders/mark-sending';
import { drawOrderIds } from '../orders/record-decision-at-once';
import { writeDecisions, type DecisionWrite, type DecisionWritten } from '../orders/write-decisions';
import { matchPhraseGroups, type MatchOptions, type PhraseVerdict } from '../orders/match';
import type { QueueMessage } from '../queue/message';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { claimMessages, type Claim, type NOT_OURS, type ShardFence } from './claim-messages';
import { describe, isDatabaseDown, isSlowStatement } from './delivery';
import { createMicroBatcher } from './micro-batcher';

/** Items in one statement at most; the prefetch over the shards held (up to 128 a shard, src/worker/shard-prefetch.ts) bounds what can wait. */
export const BATCH_ITEMS = 128;
/** Statements of each kind running at once, out of the worker's pool (DB_POOL_MAX less the group's connection: 9 by default). */
export const BATCHES_AT_ONCE = 2;
/** Items waiting before a second statement of a kind starts beside a running one (see MicroBatcherOptions). */
export const ITEMS_TO_OVERLAP = 32;

export interface StatementBatchers {
  /** The claim step (claimMessages); `attempt` is the delivery's try (0 before any retry). */
  claim(message: QueueMessage, attempt?: number): Promise<Claim | null | typeof NOT_OURS>;
  /** A message's phrases matched against the catalog (matchPhrases). */
  match(phrases: string[], options: MatchOptions): Promise<PhraseVerdict[]>;
  /** A new order id (drawOrderIds). */
  drawOrderId(): Promise<string>;
  /** A decision's order and reply (writeDecisions). */
  writeDecision(write: DecisionWrite): Promise<DecisionWritten>;
  /** The commit before a reply's provider call (markSending). */
  markSending(mark: SendingMark): Promise<boolean>;
  /** The last write of a message: its reply's state and its own final status (settleReplies). */
  settle(settlement: ReplySettlement): Promise<void>;
}

/**
 * The worker's per-message statements that many sender chains share: concurrent calls go to
 * Postgres as one statement (one round trip, one commit), and each chain gets its own
 * message's answer back, so its order holds.
 */
export function createStatementBatchers(sql: Sql, log: Logger, metrics: Metrics, options: MatchOptions, fence?: ShardFence, watch?: StallWatch): StatementBatchers {
  // Every statement timed: one that never answers stalls its kind and, through it, the shards.
  const time = timerOf(watch);
  const timed = <I, O>(operation: string, run: (items: I[]) => Promise<O[]>) => (items: I[]) => time(operation, () => run(items));
  const common = {
    maxItems: BATCH_ITEMS,
    maxConcurrent: BATCHES_AT_ONCE,
    minItemsToOverlap: ITEMS_TO_OVERLAP,
    failsEveryItem: isDatabaseDown,
    splitsOnce: isSlowStatement,
  };
  const claims = createMicroBatcher<{ message: QueueMessage; attempt: number }, Claim | null | typeof NOT_OURS>({
    ...common,
    run: timed('claim', (items) => {
      metrics.workerBatchSize.observe({ statement: 'claim' }, items.length);
      return claimMessages(sql, items.map((item) => item.message), fence, items.map((item) => item.attempt));
    }),
    onIsolating: (error) => log.warn({ err: describe(error) }, 'a claim batch failed; claiming its messages apart'),
  });
  const settlements = createMicroBatcher<ReplySettlement, void>({
    ...common,
    run: timed('settle', async (items: ReplySettlement[]) => {
      metrics.workerBatchSize.observe({ statement: 'settle' }, items.length);
      const { foldFailure } = await settleReplies(sql, items);
      if (foldFailure !== null) {
        log.warn({ err: describe(foldFailure), replies: items.length }, 'replies settled, but receipts stored meanwhile were not folded in; their next receipt or cleanup will');
      }
      return items.map(() => undefined);
    }),
    onIsolating: (error) => log.warn({ err: describe(error) }, 'a batch of reply settlements failed; writing them apart'),
  });
  const matches = createMicroBatcher<string[], PhraseVerdict[]>({
    ...common,
    run: timed('match', (groups) => {
      metrics.workerBatchSize.observe({ statement: 'match' }, groups.length);
      return matchPhraseGroups(sql, groups, options);
    }),
    onIsolating: (error) => log.warn({ err: describe(error) }, 'a batch of phrase matches failed; matching them apart'),
  });
  const orderIds = createMicroBatcher<void, string>({
    ...common,
    run: timed('order id', (draws) => drawOrderIds(sql, draws.length)),
  });
  const decisions = createMicroBatcher<DecisionWrite, DecisionWritten>({
    ...common,
    run: timed('decision', (writes) => {
      metrics.workerBatchSize.observe({ statement: 'record' }, writes.length);
      return writeDecisions(sql, writes, fence);
    }),
    onIsolating: (error) => log.warn({ err: describe(error) }, 'a batch of decisions failed; writing them apart'),
  });
  const sends = createMicroBatcher<SendingMark, boolean>({
    ...common,
    run: timed('mark sending', (marks) => {
      metrics.workerBatchSize.observe({ statement: 'mark_sending' }, marks.length);
      return markSending(sql, marks);
    }),
    onIsolating: (error) => log.warn({ err: describe(error) }, 'a batch of replies to mark sending failed; marking them apart'),
  });
  return {
    claim: (message, attempt = 0) => claims.submit({ message, attempt }),
    markSending: (mark) => sends.submit(mark),
    writeDecision: (write) => decisions.submit(write),
    // The worker matches with one set of options, those given here.
    match: (phrases) => matches.submit(phrases),
    drawOrderId: () => orderIds.submit(),
    settle: (settlement) => settlements.submit(settlement),
  };
}
