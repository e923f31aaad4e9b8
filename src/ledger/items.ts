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
  verdict: 'queued' | 'replay_rejected';
  payload: QueueMessage;
}

export interface MalformedItem extends ItemBase {
  kind: 'malformed';
  rawBody: string;
  reason: string;
  /** Kept when a single message inside a valid envelope is malformed. */
  sender?: string;
}

export interface StatusItem extends ItemBase {
  kind: 'status';
  receipt: string;
  recipient: string | null;
  timestampSeconds: number | null;
  payload: unknown;
}

/** Every per-message answer. duplicate and status_duplicate write no new row. */
export type LedgerOutcome =
  | 'queued'
  | 'rate_limited'
  | 'replay_rejected'
  | 'malformed'
  | 'duplicate'
  | 'status'
  | 'status_duplicate';

export function dedupeKey(item: LedgerItem): string {
  return item.kind === 'status'
    ? `${item.source}\u0000${item.messageId}\u0000${item.receipt}`
    : `${item.source}\u0000${item.messageId}`;
}
