import type { Sql } from '../../src/db/client';
import type { MessageItem } from '../../src/ledger/items';
import { createLedgerRecorder, type LedgerRecorder, type LedgerRecorderOptions } from '../../src/ledger/recorder';
import { uniqueWamid } from './webhooks';

/** A signed Meta text message as the adapter hands it to the ledger: new, in the window, queued. */
export function queuedTextItem(options: { sender?: string; text?: string; id?: string } = {}): MessageItem {
  const { sender = '15550800001', text = '2 pizzas', id = uniqueWamid() } = options;
  const timestampSeconds = Math.floor(Date.now() / 1000);
  return {
    kind: 'message',
    source: 'whatsapp',
    messageId: id,
    sender,
    senderKey: sender,
    business: '106540352242922',
    type: 'text',
    timestampSeconds,
    verdict: 'queued',
    payload: {
      v: 1,
      source: 'whatsapp',
      messageId: id,
      from: sender,
      senderKey: sender,
      business: '106540352242922',
      contactName: null,
      type: 'text',
      timestampSeconds,
      receivedAt: new Date().toISOString(),
      content: { id, type: 'text', text: { body: text } },
    },
  };
}

/** Rate limits no test of the ledger's own behaviour reaches. */
export const GENEROUS_LIMITS = { whatsapp: { maxRequests: 1000, windowSeconds: 3600 }, twilio: { maxRequests: 1000, windowSeconds: 3600 } };

/** A recorder that commits one batch at a time, at once, and publishes nothing. */
export function serialRecorder(sql: Sql, commitDeadlineMs: number, options: Partial<LedgerRecorderOptions> = {}): LedgerRecorder {
  return createLedgerRecorder({
    sql,
    rateLimits: GENEROUS_LIMITS,
    outboxLeaseSeconds: 60,
    maxBatchItems: 256,
    maxConcurrentBatches: 1,
    lingerMs: 0,
    commitDeadlineMs,
    onQueued: () => undefined,
    ...options,
  });
}
