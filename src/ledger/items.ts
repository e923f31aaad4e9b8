import { createHash } from 'node:crypto';
import type { Source } from '../config';
import type { QueueMessage } from '../queue/message';

/** What ingest hands to the ledger: one entry per message, receipt or unparseable body. */
export type LedgerItem = MessageItem | MalformedItem | StatusItem;

interface ItemBase {
  source: Source;
  messageId: string;
}

export interface MessageItem extends ItemBase {
  kind: 'message';
  sender: string;
  senderKey: string;
  business: string;
  type: string;
  /** Provider timestamp in epoch seconds; Twilio sends none. */
  timestampSeconds: number | null;
  /**
   * processed: written in a WhatsApp group the business is in, members talking among
   * themselves; recorded finished, never queued, and not counted against its writer's rate
   * limit, where a chatty member's own orders would have been held.
   */
  verdict: 'queued' | 'replay_rejected' | 'processed';
  payload: QueueMessage;
}

export interface MalformedItem extends ItemBase {
  kind: 'malformed';
  rawBody: string;
  reason: string;
  /** Kept when a single message inside a valid envelope is malformed. */
  sender?: string;
}

/**
 * Where a Twilio receipt keeps the reference its status callback URL carried (the ingest adds
 * it to the stored parameters, webhooks/twilio.ts; the fold reads it, ledger/fold-receipts.ts);
 * a Meta receipt has Meta's own field, biz_opaque_callback_data.
 */
export const TWILIO_REPLY_REFERENCE_PARAM = 'wagate_reply';

export interface StatusItem extends ItemBase {
  kind: 'status';
  receipt: string;
  recipient: string | null;
  timestampSeconds: number | null;
  payload: unknown;
  /** A signed receipt older than the replay window (or too far ahead): answered, not recorded. */
  outsideReplayWindow?: true;
}

/** Every per-message answer. duplicate and status_duplicate write no new row. */
export type LedgerOutcome =
  | 'queued'
  | 'rate_limited'
  | 'replay_rejected'
  /** A group's message: recorded finished (MessageItem's verdict). */
  | 'processed'
  | 'malformed'
  | 'duplicate'
  | 'status'
  | 'status_duplicate'
  /** A receipt outside the replay window: answered, not recorded, and not counted as a message. */
  | 'status_replay_rejected';

export function dedupeKey(item: LedgerItem): string {
  return item.kind === 'status'
    ? `${item.source}\u0000${item.messageId}\u0000${item.receipt}`
    : `${item.source}\u0000${item.messageId}`;
}

/** Characters that neither a text nor a jsonb column can hold: U+0000 and unpaired surrogates. */
const UNSTORABLE_TEXT = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * A signed item Postgres refused to store (SQLSTATE class 22, e.g. 22P05 for U+0000 in jsonb)
 * becomes a malformed record, so that it is answered 200 and kept rather than retried by the
 * provider for days. Its content (the message as received, or the raw body) is kept as
 * base64 in raw_body, behind a "base64:" prefix, since the text itself cannot be stored. Its
 * key stays the message id when that can be stored, so provider retries are duplicates.
 */
export function unstorableItem(item: LedgerItem, sqlState: string): MalformedItem {
  const content = item.kind === 'malformed' ? item.rawBody : JSON.stringify(item.payload);
  const key = item.kind === 'status' ? `receipt:${item.messageId}:${item.receipt}` : item.messageId;
  const sender = item.kind === 'message' ? item.sender : item.kind === 'malformed' ? item.sender : (item.recipient ?? undefined);
  return {
    kind: 'malformed',
    source: item.source,
    messageId: UNSTORABLE_TEXT.test(key) ? `unstorable:${createHash('sha256').update(key).digest('hex').slice(0, 40)}` : key,
    rawBody: `base64:${Buffer.from(content, 'utf8').toString('base64')}`,
    reason: `Postgres cannot store this ${item.kind === 'status' ? 'receipt' : 'message'} as text or JSON (SQLSTATE ${sqlState}); its content is kept as base64`,
    sender: sender !== undefined && !UNSTORABLE_TEXT.test(sender) ? sender : undefined,
  };
}
