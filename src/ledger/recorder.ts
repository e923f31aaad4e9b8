import type { RateLimit, Source } from '../config';
import { transaction, type Sql } from '../db/client';
import { timerOf, type StallWatch } from '../db/stall-watch';
import type { QueueMessage } from '../queue/message';
import { planBatch, rateLimitsJson, type BatchPlan } from './batch-plan';
import { isDataException, isTransient, ledgerTimeout, runWithDeadlockRetry, withDeadline } from './commit-guards';
import { unstorableItem, type LedgerOutcome } from './items';
import { foldReceipts } from './fold-receipts';
import { answeredAfterFold, receiptsToFold, type ReceiptRow, type ReceiptsToFold } from './receipt-folding';
import { RECORD_BATCH_SQL } from './record-batch-sql';
import { waitForPublish, type PublishWait } from './ack-after-publish';
import { expire, markCommitted, splitIntoItems, type Pending, type RecordRequest } from './pending-request';

/** A message the ledger has made durable with an outbox row, ready to publish. */
export interface QueuedEntry {
  rowId: string;
  source: Source;
  messageId: string;
  payload: QueueMessage;
  traceparent: string;
  /**
   * When the statement that wrote the row was sent (epoch ms): its outbox lease runs from about
   * then (the statement's now()), not from the commit, which may come seconds later.
   */
  leaseStartedAtMs: number;
}

export type { RecordRequest } from './pending-request';

export interface LedgerRecorderOptions {
  sql: Sql;
  rateLimits: Record<Source, RateLimit>;
  outboxLeaseSeconds: number;
  maxBatchItems: number;
  /** Batches committing at once; keep it below the pool size so the relay still gets a connection. */
  maxConcurrentBatches: number;
  /**
   * How long a batch may wait for more requests before it commits, counted from its oldest
   * request; 0 commits at once. At low rates each request would otherwise pay a commit (and
   * Postgres a WAL flush) of its own; at saturation batches fill while earlier ones commit,
   * so the linger is already over when a slot frees.
   */
  lingerMs: number;
  /**
   * Client-side deadline for one batch. statement_timeout cannot fire when the network to
   * Postgres hangs, so without this a request could wait forever.
   */
  commitDeadlineMs: number;
  /** Publishes the committed messages; settles true once the broker has confirmed them all. */
  onQueued(entries: QueuedEntry[]): Promise<boolean> | void;
  /**
   * ACK_AFTER=publish: a request with a queued message is answered once the broker has
   * confirmed its batch, or after this many ms. Undefined: answered at the commit.
   */
  ackAfterPublishMs?: number;
  onPublishWait?(result: PublishWait): void;
  onBatch?(itemCount: number, seconds: number): void;
  /** A new receipt (not a copy) that found one of wagate's replies, with what it says (sent, delivered, read, failed). */
  onReplyReceipt?(source: Source, receipt: string): void;
  /**
   * A request answered 503 at its deadline whose batch then committed (the answer came past it):
   * what was recorded for each of its items, which its answer never said.
   */
  onLateCommit?(recorded: { source: Source; outcome: LedgerOutcome }[]): void;
  /** A batch failed for a reason other than the database's health; its requests are being committed apart. */
  onIsolating?(error: unknown): void;
  /**
   * A rehearsal: each batch runs in a transaction that is rolled back, so the whole path runs
   * (pool, statement, answers, publishes) and nothing is kept. The receipts' fold after the
   * commit is left out, as there is no commit (warmUpLedger prepares its statement).
   */
  rollBack?: boolean;
  /**
   * Times each commit and fold until Postgres answers: a batch on a connection that died
   * without a reset holds its slot until TCP gives up, and with every slot so held each
   * request is answered 503 (see StallWatch).
   */
  stallWatch?: StallWatch;
}

export interface LedgerRecorder {
  record(request: RecordRequest): Promise<LedgerOutcome[]>;
  /** Resolves once everything handed in so far is committed or failed. */
  drain(): Promise<void>;
}

/** For a message, row_id is its row; for a receipt, the reply its id matched (ReceiptRow). */
type BatchRow = ReceiptRow;

/**
 * Group commit: requests that arrive while earlier batches are committing are gathered and
 * committed together in one statement. Each caller still waits for its own commit, so a
 * 200 never precedes durability; what is shared is the round trip and the WAL flush.
 */
export function createLedgerRecorder(options: LedgerRecorderOptions): LedgerRecorder {
  const timed = timerOf(options.stallWatch);
  const pending: Pending[] = [];
  let active = 0;
  let scheduled = false;
  let lingerTimer: NodeJS.Timeout | undefined;
  /** Items across `pending`, so that a full batch is seen without counting. */
  let pendingItems = 0;
  let idleWaiters: (() => void)[] = [];
  const limitsJson = JSON.stringify(rateLimitsJson(options.rateLimits));

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    const lingerLeft = lingerLeftMs();
    // setImmediate lets requests parsed in the same event-loop turn share the batch.
    if (lingerLeft > 0) lingerTimer = setTimeout(startBatches, lingerLeft);
    else setImmediate(startBatches);
  }

  function lingerLeftMs(): number {
    if (options.lingerMs === 0 || pending.length === 0 || pendingItems >= options.maxBatchItems) return 0;
    return options.lingerMs - (performance.now() - pending[0]!.queuedAt);
  }

  function startBatches(): void {
    scheduled = false;
    lingerTimer = undefined;
    while (active < options.maxConcurrentBatches && pending.length > 0) {
      const batch = takeBatch();
      active += 1;
      // The slot is held until Postgres answers, even after the callers gave up at their
      // deadline: a hanging database must not collect more than maxConcurrentBatches statements.
      void commitBatch(batch).then(() => {
        active -= 1;
        if (pending.length > 0) schedule();
        else if (active === 0) notifyIdle();
      });
    }
  }

  /** A full batch does not wait for the rest of its linger. */
  function commitIfFull(): void {
    if (lingerTimer === undefined || pendingItems < options.maxBatchItems) return;
    clearTimeout(lingerTimer);
    startBatches();
  }

  function takeBatch(): Pending[] {
    const batch: Pending[] = [];
    let items = 0;
    while (pending.length > 0 && (batch.length === 0 || items + pending[0]!.items.length <= options.maxBatchItems)) {
      const next = pending.shift()!;
      clearTimeout(next.waiting);
      items += next.items.length;
      pendingItems -= next.items.length;
      batch.push(next);
    }
    return batch;
  }

  function notifyIdle(): void {
    const waiters = idleWaiters;
    idleWaiters = [];
    waiters.forEach((resolve) => resolve());
  }

  /**
   * Settles once Postgres has answered; the callers are answered by then or at their deadline.
   * A batch that fails for a reason other than the database's health is isolated: its
   * requests are committed apart (then their items), so one poison item costs one item, not
   * every request that shared its batch.
   */
  async function commitBatch(batch: Pending[]): Promise<void> {
    const failure = await tryCommit(batch);
    if (failure === null) return;
    options.onIsolating?.(failure);
    // The parts commit one after another, each holding its slot until Postgres answers: a
    // part that hangs (a lock, a network that drops packets) must not keep the callers of the
    // later parts past their deadlines. Answering one a second time changes nothing.
    const deadlines = batch.map((request) =>
      setTimeout(() => expire(request, ledgerTimeout(options.commitDeadlineMs)), Math.max(request.deadlineAt - Date.now(), 0)),
    );
    try {
      await isolate(batch);
    } finally {
      deadlines.forEach(clearTimeout);
    }
  }

  /** Bisects a failing batch down to single items; an item no text or jsonb column can hold is kept as malformed. */
  async function isolate(batch: Pending[]): Promise<void> {
    if (batch.length > 1) {
      const middle = Math.ceil(batch.length / 2);
      for (const part of [batch.slice(0, middle), batch.slice(middle)]) {
        const failure = await tryCommit(part);
        if (failure !== null) await isolate(part);
      }
      return;
    }
    const request = batch[0]!;
    if (request.items.length > 1) return isolate(splitIntoItems(request));
    const failure = await tryCommit([request]);
    if (failure === null) return;
    if (!isDataException(failure)) return request.reject(failure);
    const storable = { ...request, items: [unstorableItem(request.items[0]!, (failure as { code: string }).code)] };
    const last = await tryCommit([storable]);
    if (last !== null) request.reject(last);
  }

  /**
   * Commits the batch and answers its requests, or answers them with the error when the
   * database is unavailable or too slow. Returns null then; returns any other error unanswered,
   * for isolation. Holds until Postgres has answered, even past the deadline.
   */
  async function tryCommit(whole: Pending[]): Promise<unknown> {
    // Each request is answered by its own deadline. Held to the batch's earliest, one request
    // that had waited long for a slot took the fresh ones beside it down with it: 503s to
    // retry, for rows that then committed anyway, on a database already slow.
    const now = Date.now();
    const timeout = ledgerTimeout(options.commitDeadlineMs);
    const batch = whole.filter((request) => request.deadlineAt > now);
    for (const request of whole) if (request.deadlineAt <= now) expire(request, timeout);
    if (batch.length === 0) return null;
    const remainingMs = Math.max(...batch.map((request) => request.deadlineAt)) - now;
    const deadlines = batch.map((request) => setTimeout(() => expire(request, timeout), request.deadlineAt - now));
    try {
      return await commitWithin(batch, remainingMs);
    } finally {
      deadlines.forEach(clearTimeout);
    }
  }

  async function commitWithin(batch: Pending[], remainingMs: number): Promise<unknown> {
    const started = performance.now();
    const plan = planBatch(batch);
    const query = timed('ledger commit', () => runWithDeadlockRetry(() => {
      const parameters = [JSON.stringify(plan.rows), limitsJson, options.outboxLeaseSeconds];
      if (!options.rollBack) return options.sql.unsafe<BatchRow[]>(RECORD_BATCH_SQL, parameters, { prepare: true });
      return transaction(options.sql, (tx) => tx.unsafe<BatchRow[]>(RECORD_BATCH_SQL, parameters, { prepare: true }), 'rollback');
    }));
    let failure: unknown = null;
    let answered = false;
    try {
      const rows = await withDeadline(query, remainingMs);
      answered = true;
      await answer(batch, plan, rows, started);
    } catch (error) {
      if (isTransient(error)) batch.forEach((request) => request.reject(error));
      else failure = error;
    }
    const late = await query.then(
      (rows) => rows,
      () => null,
    );
    // The deadline came first, and the statement committed after it all the same: its callers
    // have their 503 (the provider's retry finds a duplicate), but its messages are queued.
    // Answered again, the requests change nothing; their rows go to the relay now, ahead of
    // what the same senders send next, not a lease later from a sweep behind it.
    if (!answered && late !== null) await answer(batch, plan, late, started);
    return failure;
  }

  async function answer(batch: Pending[], plan: BatchPlan, rows: BatchRow[], started: number): Promise<void> {
    const folding = options.rollBack ? null : receiptsToFold(plan, rows);
    if (folding === null || folding.keys.length === 0) answerBatch(batch, plan, rows, started);
    else await answerAfterFolding(batch, plan, rows, started, folding);
  }

  /**
   * Answers the batch, and the requests with a receipt to fold once foldReceipts has run
   * after the commit (receipt-folding.ts), so that their 200 means the receipt has reached
   * its reply. Like the commit, the fold holds the batch's slot until Postgres has answered,
   * even past the deadline.
   */
  async function answerAfterFolding(batch: Pending[], plan: BatchPlan, rows: BatchRow[], started: number, folding: ReceiptsToFold) {
    const fold = timed('receipt fold', () => runWithDeadlockRetry(() => foldReceipts(options.sql, folding.keys)));
    // Each request waits for the fold until its own deadline: one that waited long for its
    // batch must not make the others answer 503 for a fold of milliseconds.
    const folded = (request: Pending) => withDeadline(fold, Math.max(request.deadlineAt - Date.now(), 1)).then(
      () => null,
      (error: unknown) => error,
    );
    answerBatch(answeredAfterFold(batch, folding.ords, folded), plan, rows, started);
    await fold.then(
      () => undefined,
      () => undefined,
    );
  }

  function answerBatch(batch: Pending[], plan: BatchPlan, rows: BatchRow[], started: number): void {
    const leaseStartedAtMs = Date.now() - (performance.now() - started);
    const queued: QueuedEntry[] = [];
    // In arrival order, whatever order the statement returned its rows in: the relay publishes
    // them as given, and a sender's "cancel" must not reach the queue before its "2 pizzas".
    for (const row of [...rows].sort((a, b) => a.ord - b.ord)) {
      plan.outcomes[row.ord] = row.outcome;
      const item = plan.items[row.ord]!;
      // row_id is the reply the receipt matched; none for another sender's or a pruned reply.
      if (row.outcome === 'status' && item.item.kind === 'status' && row.row_id !== null && !options.rollBack) {
        options.onReplyReceipt?.(item.item.source, item.item.receipt);
      }
      if (row.outcome === 'queued' && item.item.kind === 'message') {
        queued.push({
          rowId: String(row.row_id),
          source: item.item.source,
          messageId: item.item.messageId,
          payload: item.item.payload,
          traceparent: item.traceparent,
          leaseStartedAtMs,
        });
      }
    }
    options.onBatch?.(plan.items.length, (performance.now() - started) / 1000);
    const publishing = queued.length > 0 ? options.onQueued(queued) : undefined;
    let offset = 0;
    for (const request of batch) {
      const outcomes = plan.outcomes.slice(offset, offset + request.items.length) as LedgerOutcome[];
      offset += request.items.length;
      // Had its 503 at its own deadline, before this commit answered: its items are recorded all the same.
      if (request.expired) {
        const recorded = request.items.map((item, index) => ({ source: item.source, outcome: outcomes[index]! }));
        options.onLateCommit?.(recorded.filter(({ outcome }) => outcome !== 'status_replay_rejected'));
      }
      // A request past its deadline has had its 503: nothing waits for the publish on its behalf.
      const waitMs = options.ackAfterPublishMs;
      const waitsForPublish = publishing && waitMs !== undefined && outcomes.includes('queued') && !request.expired && Date.now() < request.deadlineAt;
      markCommitted(request);
      if (waitsForPublish) {
        void waitForPublish(publishing, waitMs).then((result) => {
          options.onPublishWait?.(result);
          request.resolve(outcomes);
        });
      } else {
        request.resolve(outcomes);
      }
    }
  }

  return {
    record(request) {
      return new Promise<LedgerOutcome[]>((resolve, reject) => {
        if (request.items.length === 0) return resolve([]);
        const entry: Pending = {
          ...request,
          resolve,
          reject,
          waiting: undefined,
          queuedAt: performance.now(),
          deadlineAt: Date.now() + options.commitDeadlineMs,
        };
        // Waiting for a free batch slot is bounded too: while Postgres hangs, every slot stays taken.
        entry.waiting = setTimeout(() => {
          const index = pending.indexOf(entry);
          if (index === -1) return;
          pending.splice(index, 1);
          pendingItems -= entry.items.length;
          reject(ledgerTimeout(options.commitDeadlineMs, 'a batch slot'));
          if (pending.length === 0 && active === 0) notifyIdle();
        }, options.commitDeadlineMs);
        pending.push(entry);
        pendingItems += entry.items.length;
        schedule();
        commitIfFull();
      });
    },
    drain() {
      if (active === 0 && pending.length === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
