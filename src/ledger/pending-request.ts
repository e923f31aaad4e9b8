import type { LedgerItem, LedgerOutcome } from './items';

export interface RecordRequest {
  items: LedgerItem[];
  receivedAtMs: number;
  traceparent: string;
}

export interface Pending extends RecordRequest {
  resolve(outcomes: LedgerOutcome[]): void;
  reject(error: unknown): void;
  /** The deadline for getting into a batch at all. */
  waiting: NodeJS.Timeout | undefined;
  /** performance.now() when the request was handed to the ledger: the linger counts from the oldest. */
  queuedAt: number;
  /** Epoch ms by which the caller has its answer: arrival plus commitDeadlineMs, slot wait, batch and isolation included. */
  deadlineAt: number;
  /** The caller has had its 503 at the deadline (expire). */
  expired?: boolean;
  /**
   * Committed, and given its outcomes, or waiting for its publish's confirm with them
   * (ACK_AFTER=publish): a deadline that passes now, while the later parts of an isolated batch
   * or a receipt's fold still run, must not answer it 503.
   */
  committed?: boolean;
  /** Marks the request committed, and the caller's own request behind a stand-in (an item of a split one, a copy that waits for a fold). */
  markCommitted?(): void;
}

/** Marks a request committed: expire() leaves it to its answer from now on. */
export function markCommitted(request: Pending): void {
  request.committed = true;
  request.markCommitted?.();
}

/**
 * Answers a request 503 at its deadline, and marks it so. A timer can fire a little before
 * Date.now() reaches deadlineAt (it counts from the event loop's cached time), so a late
 * commit answer must ask the mark, not the clock, whether the caller still waits.
 */
export function expire(request: Pending, error: unknown): void {
  if (request.committed) return;
  request.expired = true;
  request.reject(error);
}

/**
 * One pending request per item of a request, so that isolation can reach the one item that
 * fails; the request is answered once all of them are, with their outcomes in order.
 */
export function splitIntoItems(request: Pending): Pending[] {
  const outcomes: LedgerOutcome[] = [];
  let remaining = request.items.length;
  let uncommitted = request.items.length;
  let failed = false;
  return request.items.map((item, index) => ({
    items: [item],
    receivedAtMs: request.receivedAtMs,
    traceparent: request.traceparent,
    waiting: undefined,
    queuedAt: request.queuedAt,
    deadlineAt: request.deadlineAt,
    // The caller's request is committed once every item of it is.
    markCommitted() {
      uncommitted -= 1;
      if (uncommitted === 0) markCommitted(request);
    },
    resolve([outcome]) {
      outcomes[index] = outcome!;
      remaining -= 1;
      if (remaining === 0 && !failed) request.resolve(outcomes);
    },
    reject(error) {
      if (failed) return;
      failed = true;
      request.reject(error);
    },
  }));
}
