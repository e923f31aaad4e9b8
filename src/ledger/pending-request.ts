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
}

/**
 * One pending request per item of a request, so that isolation can reach the one item that
 * fails; the request is answered once all of them are, with their outcomes in order.
 */
export function splitIntoItems(request: Pending): Pending[] {
  const outcomes: LedgerOutcome[] = [];
  let remaining = request.items.length;
  let failed = false;
  return request.items.map((item, index) => ({
    items: [item],
    receivedAtMs: request.receivedAtMs,
    traceparent: request.traceparent,
    waiting: undefined,
    queuedAt: request.queuedAt,
    deadlineAt: request.deadlineAt,
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
