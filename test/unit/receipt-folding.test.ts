import { planBatch } from '../../src/ledger/batch-plan';
import type { StatusItem } from '../../src/ledger/items';
import { receiptsToFold } from '../../src/ledger/receipt-folding';

/**
 * After its commit, a batch folds in again the receipts that found no reply (foldReceipts), and
 * their requests wait for it: a fold that fails turns their 200 into a 503. A receipt outside
 * the replay window is answered without being recorded, so it has nothing to fold, and must
 * neither cost that query nor wait on it.
 */
const receipt = (messageId: string, outsideReplayWindow: boolean): StatusItem => ({
  kind: 'status',
  source: 'whatsapp',
  messageId,
  receipt: 'delivered',
  recipient: '15550100001',
  timestampSeconds: 1_700_000_000,
  payload: {},
  ...(outsideReplayWindow ? { outsideReplayWindow: true as const } : {}),
});

it('folds a receipt that found no reply, and not one outside the replay window', () => {
  const plan = planBatch([{ items: [receipt('wamid.fresh', false), receipt('wamid.replayed', true)], receivedAtMs: Date.now(), traceparent: '' }]);
  expect(plan.outcomes).toEqual([undefined, 'status_replay_rejected']);
  // The statement answered the fresh receipt, unmatched; the replayed one never reached it.
  const folding = receiptsToFold(plan, [{ ord: 0, outcome: 'status', row_id: null }]);
  expect(folding.keys).toEqual([{ source: 'whatsapp', providerMessageId: 'wamid.fresh' }]);
  expect([...folding.ords]).toEqual([0]);
});

it('folds nothing for a batch whose only receipt is outside the replay window', () => {
  const plan = planBatch([{ items: [receipt('wamid.replayed', true)], receivedAtMs: Date.now(), traceparent: '' }]);
  expect(receiptsToFold(plan, [])).toEqual({ keys: [], ords: new Set() });
});
