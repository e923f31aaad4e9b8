import type { BatchPlan } from './batch-plan';
import type { ReceiptKey } from './fold-receipts';
import type { LedgerOutcome } from './items';
import { markCommitted, type Pending } from './pending-request';

/** What the batch statement answered for an item: a receipt's row_id is the reply its id matched, or null. */
export interface ReceiptRow {
  ord: number;
  outcome: LedgerOutcome;
  row_id: string | null;
}

export interface ReceiptsToFold {
  keys: ReceiptKey[];
  /** The batch positions (ord) of those receipts. */
  ords: Set<number>;
}

/**
 * The receipts of a committed batch to fold in again (foldReceipts): a new one that found no
 * reply may have met the reply's settle committing at the same moment (migrations/020), and a
 * duplicate may be the provider's retry after a fold that failed.
 */
export function receiptsToFold(plan: BatchPlan, rows: readonly ReceiptRow[]): ReceiptsToFold {
  // Most batches carry messages only: nothing to look up.
  if (!plan.items.some(({ item }) => item.kind === 'status')) return { keys: [], ords: new Set() };
  const matched = new Set(rows.filter((row) => row.outcome === 'status' && row.row_id !== null).map((row) => row.ord));
  const folding: ReceiptsToFold = { keys: [], ords: new Set() };
  plan.items.forEach(({ item }, ord) => {
    // A receipt outside the replay window was answered, not recorded: nothing of it to fold.
    if (item.kind !== 'status' || matched.has(ord) || plan.outcomes[ord] === 'status_replay_rejected') return;
    folding.keys.push({ source: item.source, providerMessageId: item.messageId });
    folding.ords.add(ord);
  });
  return folding;
}

/**
 * The batch's requests, those carrying a receipt to fold answered only once `folded(request)`
 * settles (the fold, within that request's own deadline): with their outcomes when it holds no
 * failure, else with the failure, so that the provider retries. A request without one is
 * answered as it would be.
 */
export function answeredAfterFold(batch: readonly Pending[], ords: ReadonlySet<number>, folded: (request: Pending) => Promise<unknown>): Pending[] {
  let offset = 0;
  return batch.map((request) => {
    const first = offset;
    offset += request.items.length;
    if (!request.items.some((_, index) => ords.has(first + index))) return request;
    const resolve = (outcomes: LedgerOutcome[]) =>
      void folded(request).then((failure) => (failure === null ? request.resolve(outcomes) : request.reject(failure)));
    // The caller's request is committed once its receipts are folded in time: until then its
    // deadline may still answer it 503, as the fold's own failure would.
    const committed = () => void folded(request).then((failure) => failure === null && markCommitted(request));
    return { ...request, resolve, markCommitted: committed };
  });
}
