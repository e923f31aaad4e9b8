import type { RateLimit, Source } from '../config';
import type { Sql } from '../db/client';
import { classifyPostgresError } from '../db/postgres-errors';
import { WagateError } from '../errors';
import type { QueueMessage } from '../queue/message';
import { dedupeKey, type LedgerItem, type LedgerOutcome } from './items';
import { RECORD_BATCH_SQL } from './record-batch-sql';

/** A message the ledger has made durable with an outbox row, ready to publish. */
export interface QueuedEntry {
  rowId: string;
  source: Source;
  messageId: string;
  payload: QueueMessage;
  traceparent: string;
  committedAtMs: number;
}

export interface RecordRequest {
  items: LedgerItem[];
  receivedAtMs: number;
  traceparent: string;
}

export interface LedgerRecorderOptions {
  sql: Sql;
  rateLimits: Record<Source, RateLimit>;
  outboxLeaseSeconds: number;
  maxBatchItems: number;
  /** Batches committing at once; keep it below the pool size so the relay still gets a connection. */
  maxConcurrentBatches: number;
  /**
   * Client-side deadline for one batch. statement_timeout cannot fire when the network to
   * Postgres hangs, so without this a request could wait forever.
   */
  commitDeadlineMs: number;
  onQueued(entries: QueuedEntry[]): void;
  onBatch?(itemCount: number, seconds: number): void;
}

export interface LedgerRecorder {
  record(request: RecordRequest): Promise<LedgerOutcome[]>;
  /** Resolves once everything handed in so far is committed or failed. */
  drain(): Promise<void>;
}

interface Pending extends RecordRequest {
  resolve(outcomes: LedgerOutcome[]): void;
  reject(error: unknown): void;
  /** The deadline for getting into a batch at all. */
  waiting: NodeJS.Timeout | undefined;
}

const DEADLOCK_RETRIES = 3;

/**
 * Group commit: requests that arrive while earlier batches are committing are gathered and
 * committed together in one statement. Each caller still waits for its own commit, so a
 * 200 never precedes durability; what is shared is the round trip and the WAL flush.
 */
export function createLedgerRecorder(options: LedgerRecorderOptions): LedgerRecorder {
  const pending: Pending[] = [];
  let active = 0;
  let scheduled = false;
  let idleWaiters: (() => void)[] = [];
  const limitsJson = JSON.stringify(rateLimitsJson(options.rateLimits));

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    // setImmediate lets requests parsed in the same event-loop turn share the batch.
    setImmediate(() => {
      scheduled = false;
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
    });
  }

  function takeBatch(): Pending[] {
    const batch: Pending[] = [];
    let items = 0;
    while (pending.length > 0 && (batch.length === 0 || items + pending[0]!.items.length <= options.maxBatchItems)) {
      const next = pending.shift()!;
      clearTimeout(next.waiting);
      items += next.items.length;
      batch.push(next);
    }
    return batch;
  }

  function notifyIdle(): void {
    const waiters = idleWaiters;
    idleWaiters = [];
    waiters.forEach((resolve) => resolve());
  }

  /** Settles once Postgres has answered; the callers are answered by then or at their deadline. */
  async function commitBatch(batch: Pending[]): Promise<void> {
    const started = performance.now();
    const plan = planBatch(batch);
    const query = runWithDeadlockRetry(() =>
      options.sql.unsafe<{ ord: number; outcome: LedgerOutcome; row_id: string | null }[]>(
        RECORD_BATCH_SQL,
        [JSON.stringify(plan.rows), limitsJson, options.outboxLeaseSeconds],
        { prepare: true },
      ),
    );
    try {
      const rows = await withDeadline(query, options.commitDeadlineMs);
      const committedAtMs = Date.now();
      const queued: QueuedEntry[] = [];
      for (const row of rows) {
        plan.outcomes[row.ord] = row.outcome;
        const item = plan.items[row.ord]!;
        if (row.outcome === 'queued' && item.item.kind === 'message') {
          queued.push({
            rowId: String(row.row_id),
            source: item.item.source,
            messageId: item.item.messageId,
            payload: item.item.payload,
            traceparent: item.traceparent,
            committedAtMs,
          });
        }
      }
      options.onBatch?.(plan.items.length, (performance.now() - started) / 1000);
      if (queued.length > 0) options.onQueued(queued);
      let offset = 0;
      for (const request of batch) {
        request.resolve(plan.outcomes.slice(offset, offset + request.items.length) as LedgerOutcome[]);
        offset += request.items.length;
      }
    } catch (error) {
      batch.forEach((request) => request.reject(error));
    }
    await query.then(
      () => undefined,
      () => undefined,
    );
  }

  return {
    record(request) {
      return new Promise<LedgerOutcome[]>((resolve, reject) => {
        if (request.items.length === 0) return resolve([]);
        const entry: Pending = { ...request, resolve, reject, waiting: undefined };
        // Waiting for a free batch slot is bounded too: while Postgres hangs, every slot stays taken.
        entry.waiting = setTimeout(() => {
          const index = pending.indexOf(entry);
          if (index === -1) return;
          pending.splice(index, 1);
          reject(ledgerTimeout(options.commitDeadlineMs));
          if (pending.length === 0 && active === 0) notifyIdle();
        }, options.commitDeadlineMs);
        pending.push(entry);
        schedule();
      });
    },
    drain() {
      if (active === 0 && pending.length === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}

interface PlannedItem {
  item: LedgerItem;
  traceparent: string;
}

/**
 * Flattens the batch and folds copies of one key into a single row: the first copy carries
 * the count, later copies are duplicates before they reach SQL (ON CONFLICT cannot touch a
 * row twice in one statement).
 */
function planBatch(batch: Pending[]) {
  const items: PlannedItem[] = [];
  const outcomes: (LedgerOutcome | undefined)[] = [];
  const rows: Record<string, unknown>[] = [];
  const firstByKey = new Map<string, Record<string, unknown>>();
  const now = Date.now();
  for (const request of batch) {
    for (const item of request.items) {
      const ord = items.length;
      items.push({ item, traceparent: request.traceparent });
      const key = dedupeKey(item);
      const first = firstByKey.get(key);
      if (first) {
        first.copies = (first.copies as number) + 1;
        outcomes[ord] = item.kind === 'status' ? 'status_duplicate' : 'duplicate';
        continue;
      }
      outcomes[ord] = undefined;
      const row = toRow(item, ord, now - request.receivedAtMs, request.traceparent);
      firstByKey.set(key, row);
      rows.push(row);
    }
  }
  return { items, outcomes, rows };
}

function toRow(item: LedgerItem, ord: number, responseMs: number, traceparent: string): Record<string, unknown> {
  const base = { ord, kind: item.kind, source: item.source, message_id: item.messageId, copies: 1, response_ms: responseMs };
  switch (item.kind) {
    case 'message':
      return {
        ...base,
        sender: item.sender,
        sender_key: item.senderKey,
        business: item.business,
        message_type: item.type,
        ts: item.timestampSeconds,
        verdict: item.verdict,
        payload: item.payload,
        traceparent,
      };
    case 'malformed':
      return { ...base, sender: item.sender ?? null, verdict: 'malformed', raw_body: item.rawBody, reason: item.reason };
    case 'status':
      return { ...base, sender: item.recipient, receipt: item.receipt, ts: item.timestampSeconds, payload: item.payload };
  }
}

function rateLimitsJson(limits: Record<Source, RateLimit>) {
  return Object.fromEntries(
    Object.entries(limits).map(([source, limit]) => [source, { max: limit.maxRequests, window: limit.windowSeconds }]),
  );
}

function ledgerTimeout(deadlineMs: number): WagateError {
  return new WagateError('LEDGER_TIMEOUT', `ledger commit exceeded ${deadlineMs} ms`);
}

/** The batch may still commit after the deadline; the provider's retry then finds a duplicate. */
function withDeadline<T>(work: Promise<T>, deadlineMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(ledgerTimeout(deadlineMs)), deadlineMs);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

async function runWithDeadlockRetry<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await run();
    } catch (error) {
      // Sorted locking should prevent a deadlock; if a foreign writer causes one, retry.
      if (classifyPostgresError(error) !== 'DATABASE_DEADLOCK' || attempt >= DEADLOCK_RETRIES) throw error;
    }
  }
}
