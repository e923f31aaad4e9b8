import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { Source } from '../config';
import type { LedgerItem, MalformedItem } from '../ledger/items';
import type { SignatureRejection } from './signature-rejection';

/** The parts of an HTTP request that a provider adapter may look at. */
export interface InboundRequest {
  rawBody: Buffer;
  header(name: string): string | undefined;
  /** Path and query exactly as received. */
  originalUrl: string;
}

/** An error the provider reports in a webhook (Meta's `errors` arrays): nothing to record, much to log. */
export interface ProviderError {
  code: number;
  title: string;
  details?: string;
}

export interface ParsedWebhook {
  items: LedgerItem[];
  providerErrors: ProviderError[];
}

/** One per provider: verify first, then turn the verified bytes into ledger items. */
export interface WebhookAdapter {
  source: Source;
  verify(request: InboundRequest): boolean;
  /** Why verify refused this request; asked only after a refusal. */
  rejection(request: InboundRequest): SignatureRejection;
  parse(request: InboundRequest, receivedAtMs: number): ParsedWebhook;
  ack: { contentType: string; body: string };
  /** The largest body this provider sends, when below MAX_BODY_BYTES: more is refused with 413 unread. */
  maxBodyBytes?: number;
}

/**
 * The longest sender, recipient or business address taken. Phone numbers and Meta's user ids
 * are a few dozen characters; a sender becomes a key of the rate-limit index, which refuses
 * rows past 2.7 kB, so a longer one failed its whole request with a 503 until the provider
 * gave up retrying. Longer ones make the item malformed, with the field named.
 */
export const MAX_ADDRESS_LENGTH = 256;

/**
 * A signed body we cannot use. Its key is `messageId` when given (an id of its own, or for a
 * Twilio form a hash of the parameters that were signed), else derived from the bytes, so a
 * provider retry of the same body is a duplicate rather than a second row.
 */
export function malformedItem(source: Source, rawBody: Buffer, reason: string, messageId?: string): MalformedItem {
  const body = bodyOf(rawBody);
  return { kind: 'malformed', source, messageId: messageId ?? body.key, rawBody: body.text, reason };
}

/** The dedupe key of a malformed item that has no id of its own: a hash of what identifies it. */
export function malformedKey(identity: Buffer | string): string {
  return `malformed:${createHash('sha256').update(identity).digest('hex').slice(0, 40)}`;
}

/**
 * A body's key and text, made once however many of its parts are malformed: its items share
 * one string, and a body of thousands of broken parts is hashed and decoded once, not per part.
 */
const bodies = new WeakMap<Buffer, { key: string; text: string }>();

function bodyOf(rawBody: Buffer): { key: string; text: string } {
  let body = bodies.get(rawBody);
  if (!body) {
    // Bytes that are not UTF-8 would decode with replacement characters, and the record would
    // not hold what was received (nor could it be checked against its signature again): such a
    // body is kept as base64, as one Postgres cannot store is (unstorableItem).
    const text = isUtf8(rawBody) ? rawBody.toString('utf8') : `base64:${rawBody.toString('base64')}`;
    body = { key: malformedKey(rawBody), text };
    bodies.set(rawBody, body);
  }
  return body;
}
