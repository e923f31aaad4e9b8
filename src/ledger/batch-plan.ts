import type { RateLimit, Source } from '../config';
import { dedupeKey, type LedgerItem, type LedgerOutcome } from './items';
import type { RecordRequest } from './pending-request';

export type BatchPlan = ReturnType<typeof planBatch>;

interface PlannedItem {
  item: LedgerItem;
  traceparent: string;
}

/**
 * Flattens the batch and folds copies of one key into a single row: the first copy carries
 * the count, later copies are duplicates before they reach SQL (ON CONFLICT cannot touch a
 * row twice in one statement).
 */
export function planBatch(batch: readonly RecordRequest[]) {
  const items: PlannedItem[] = [];
  const outcomes: (LedgerOutcome | undefined)[] = [];
  const rows: Record<string, unknown>[] = [];
  const firstByKey = new Map<string, Record<string, unknown>>();
  const now = Date.now();
  for (const request of batch) {
    for (const item of request.items) {
      const ord = items.length;
      items.push({ item, traceparent: request.traceparent });
      // A replayed receipt moves nothing (receipts only move a reply forward), but would be
      // counted and kept again once cleanup has removed its key.
      if (item.kind === 'status' && item.outsideReplayWindow) {
        outcomes[ord] = 'status_replay_rejected';
        continue;
      }
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

export function rateLimitsJson(limits: Record<Source, RateLimit>) {
  return Object.fromEntries(
    Object.entries(limits).map(([source, limit]) => [source, { max: limit.maxRequests, window: limit.windowSeconds }]),
  );
}
