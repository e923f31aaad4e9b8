import { metaRejection } from './signature-rejection';
import { FUTURE_SKEW_SECONDS } from '../config';
import type { LedgerItem, MalformedItem, MessageItem } from '../ledger/items';
import { verifyHmac } from './hmac';
import { describeIssues } from '../errors';
import { malformedItem, type InboundRequest, type ParsedWebhook, type ProviderError, type WebhookAdapter } from './adapter';
import {
  contactSchema,
  messageContentSchemas,
  metaErrorSchema,
  messagesValueSchema,
  metaChangeSchema,
  metaEntrySchema,
  metaEnvelopeSchema,
  metaMessageSchema,
  metaStatusSchema,
  type MetaContact,
} from './meta-schema';

export { META_WEBHOOK_PATH } from './paths';
const SIGNATURE_PREFIX = 'sha256=';

export interface MetaAdapterOptions {
  appSecrets: readonly string[];
  replayWindowSeconds: number;
}

export function createMetaAdapter(options: MetaAdapterOptions): WebhookAdapter {
  return {
    source: 'whatsapp',
    ack: { contentType: 'text/plain; charset=utf-8', body: 'EVENT_RECEIVED' },
    verify: (request) => verifyMetaSignature(request, options.appSecrets),
    rejection: (request) => metaRejection(request, options.appSecrets),
    parse: (request, receivedAtMs) => parseMetaWebhook(request.rawBody, receivedAtMs, options.replayWindowSeconds),
  };
}

/** X-Hub-Signature-256 is an HMAC-SHA256 of the exact bytes Meta sent, keyed by the app secret. */
export function verifyMetaSignature(request: InboundRequest, appSecrets: readonly string[]): boolean {
  const header = request.header('x-hub-signature-256');
  if (!header || !header.startsWith(SIGNATURE_PREFIX) || appSecrets.length === 0) return false;
  return verifyHmac({
    algorithm: 'sha256',
    encoding: 'hex',
    secrets: appSecrets,
    data: request.rawBody,
    signature: header.slice(SIGNATURE_PREFIX.length),
  });
}

export function parseMetaBody(rawBody: Buffer, receivedAtMs: number, replayWindowSeconds: number): LedgerItem[] {
  return parseMetaWebhook(rawBody, receivedAtMs, replayWindowSeconds).items;
}

export function parseMetaWebhook(rawBody: Buffer, receivedAtMs: number, replayWindowSeconds: number): ParsedWebhook {
  let json: unknown;
  try {
    // A leading byte-order mark is not part of the JSON text (RFC 8259 8.1); the signature was
    // checked over the bytes as received, BOM included.
    json = JSON.parse(rawBody.toString('utf8').replace(/^\uFEFF/, ''));
  } catch {
    return { items: [malformedItem('whatsapp', rawBody, 'body is not valid JSON')], providerErrors: [] };
  }
  const envelope = metaEnvelopeSchema.safeParse(json);
  if (!envelope.success) return { items: [malformedItem('whatsapp', rawBody, describeIssues(envelope.error.issues))], providerErrors: [] };

  const items: LedgerItem[] = [];
  const providerErrors: ProviderError[] = [];
  let malformedParts = 0;
  let firstIssue = '';
  const add = (item: LedgerItem) => {
    if (item.kind === 'malformed') {
      malformedParts += 1;
      if (malformedParts === 1) firstIssue = item.reason;
      if (malformedParts > MAX_MALFORMED_PARTS) return;
    }
    items.push(item);
  };
  envelope.data.entry.forEach((rawEntry, e) => {
    const entry = metaEntrySchema.safeParse(rawEntry);
    if (!entry.success) return add(malformedPart(rawBody, `entry.${e}`, entry.error.issues));
    entry.data.changes.forEach((rawChange, c) => {
      const at = `entry.${e}.changes.${c}`;
      const change = metaChangeSchema.safeParse(rawChange);
      if (!change.success) return add(malformedPart(rawBody, at, change.error.issues));
      // Other webhook fields (account updates, templates) carry no customer messages.
      if (change.data.field !== 'messages') return;
      const value = messagesValueSchema.safeParse(change.data.value);
      if (!value.success) return add(malformedPart(rawBody, `${at}.value`, value.error.issues));
      const context = {
        business: value.data.metadata.phone_number_id,
        contacts: metaContacts(value.data.contacts),
        receivedAtMs,
        replayWindowSeconds,
        rawBody,
      };
      value.data.messages?.forEach((message, m) => add(toMessageItem(message, context, `${at}.value.messages.${m}`)));
      value.data.statuses?.forEach((status, s) => add(toStatusItem(status, context, `${at}.value.statuses.${s}`)));
      value.data.errors?.forEach((error) => providerErrors.push(toProviderError(error)));
    });
  });
  if (malformedParts <= MAX_MALFORMED_PARTS) return { items, providerErrors };
  // The good messages and receipts keep their rows; the bad parts share one, which keeps the
  // whole body once, keyed by its hash (so a retry of the body stays a duplicate).
  const folded = malformedItem('whatsapp', rawBody, `${malformedParts} parts of the body are malformed; the first: ${firstIssue}`);
  return { items: [...items.filter((item) => item.kind !== 'malformed'), folded], providerErrors };
}

/**
 * Malformed parts beyond this many share one row. Each part's row keeps the raw body, so
 * 50,000 broken entries would have written 50,000 copies of it.
 */
const MAX_MALFORMED_PARTS = 20;

function toProviderError(raw: unknown): ProviderError {
  const parsed = metaErrorSchema.safeParse(raw);
  if (!parsed.success) return { code: 0, title: 'an error entry without a numeric code' };
  const { code, title, message, error_data: data } = parsed.data;
  return { code, title: title ?? message ?? 'untitled', details: data?.details };
}

/**
 * A bad part of a good envelope. Without an id of its own, its key is the body's hash plus
 * its position, so that two bad parts of one body stay two rows and a retry stays a duplicate.
 */
function malformedPart(
  rawBody: Buffer,
  at: string,
  issues: readonly { path: PropertyKey[]; message: string }[],
  ids: { messageId?: string; sender?: string } = {},
): MalformedItem {
  const reason = describeIssues(issues.map((issue) => ({ ...issue, path: [at, ...issue.path] })));
  const item = malformedItem('whatsapp', rawBody, reason, ids.messageId);
  if (!ids.messageId) item.messageId = `${item.messageId}:${at}`;
  if (ids.sender) item.sender = ids.sender;
  return item;
}

interface ChangeContext {
  business: string;
  contacts: (ReadContact | null)[];
  receivedAtMs: number;
  replayWindowSeconds: number;
  rawBody: Buffer;
}

/**
 * Deepest nesting a message may have. Meta's messages nest a few levels; one of an unknown type
 * nested thousands deep would pass the schema and then overflow the stack when its payload is
 * serialised for the ledger, answering 503 to every retry of a body no retry can fix.
 */
const MAX_MESSAGE_DEPTH = 32;
/** The issue a message or a status receipt nested deeper than that is malformed for. */
const NESTED_TOO_DEEP = { path: [], message: `nests deeper than ${MAX_MESSAGE_DEPTH} levels` };

/** Whether a parsed JSON value nests deeper than `limit` objects or arrays; iterative, so any depth is safe. */
function nestsDeeperThan(value: unknown, limit: number): boolean {
  const pending: [unknown, number][] = [[value, 0]];
  while (pending.length > 0) {
    const [current, depth] = pending.pop()!;
    if (current === null || typeof current !== 'object') continue;
    if (depth >= limit) return true;
    for (const child of Object.values(current)) pending.push([child, depth + 1]);
  }
  return false;
}

function toMessageItem(raw: unknown, context: ChangeContext, at: string): LedgerItem {
  const parsed = metaMessageSchema.safeParse(raw);
  if (!parsed.success) return malformedPart(context.rawBody, at, parsed.error.issues, rawIdentity(raw));
  const message = parsed.data;
  // Own keys only: a type such as "constructor" must not find Object.prototype's members.
  const contentSchema = Object.hasOwn(messageContentSchemas, message.type) ? messageContentSchemas[message.type] : undefined;
  const content = contentSchema?.safeParse((raw as Record<string, unknown>)[message.type]);
  if (content && !content.success) {
    const issues = content.error.issues.map((issue) => ({ ...issue, path: [message.type, ...issue.path] }));
    return malformedPart(context.rawBody, at, issues, { messageId: message.id, sender: message.from ?? message.from_user_id });
  }
  if (nestsDeeperThan(raw, MAX_MESSAGE_DEPTH)) {
    return malformedPart(context.rawBody, at, [NESTED_TOO_DEEP], { messageId: message.id, sender: message.from ?? message.from_user_id });
  }
  const contact = findContact(context.contacts, message.from, message.from_user_id);
  const userId = message.from_user_id ?? contact?.user_id;
  const from = message.from ?? contact?.wa_id ?? userId;
  if (!from) {
    return malformedPart(context.rawBody, at, [{ path: [], message: 'message has neither from nor a user_id' }], { messageId: message.id });
  }
  const senderKey = userId ?? from;
  const timestampSeconds = Number(message.timestamp);
  const base = { source: 'whatsapp' as const, messageId: message.id, senderKey, business: context.business, type: message.type, timestampSeconds };
  return {
    ...base,
    kind: 'message',
    sender: from,
    verdict: isOutsideWindow(timestampSeconds, context) ? 'replay_rejected' : message.group_id !== undefined ? 'processed' : 'queued',
    payload: {
      ...base,
      v: 1,
      from,
      contactName: contact?.profile?.name ?? null,
      receivedAt: new Date(context.receivedAtMs).toISOString(),
      content: raw,
    },
  } satisfies MessageItem;
}

/** Older than the replay window, or further ahead than the clock skew we allow. */
function isOutsideWindow(timestampSeconds: number, context: ChangeContext): boolean {
  const nowSeconds = context.receivedAtMs / 1000;
  return nowSeconds - timestampSeconds > context.replayWindowSeconds || timestampSeconds - nowSeconds > FUTURE_SKEW_SECONDS;
}

/** Whatever usable id and sender a message that failed validation still carries. */
function rawIdentity(raw: unknown): { messageId?: string; sender?: string } {
  const fields = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const bounded = (value: unknown) => (typeof value === 'string' && value.length > 0 && value.length <= 256 ? value : undefined);
  return { messageId: bounded(fields.id), sender: bounded(fields.from) ?? bounded(fields.from_user_id) };
}

/** A contact as read; partial when some field of it could not be read, and left out. */
type ReadContact = MetaContact & { partial?: true };

/**
 * A value's contacts, each judged on its own, and each field of one on its own: a bad field (an
 * address too long, a profile that is not an object) is left out and the rest kept, so that a
 * message still finds its sender's user id, which its sender key (and so its shard and rate
 * limit) may be taken from. A contact that is not an object at all is null; it keeps its place,
 * so that a lone bad contact is not mistaken for none.
 */
function metaContacts(raw: unknown): (ReadContact | null)[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((contact) => {
    if (typeof contact !== 'object' || contact === null || Array.isArray(contact)) return null;
    const whole = contactSchema.safeParse(contact);
    if (whole.success) return whole.data;
    const field = (name: keyof typeof contactSchema.shape, value: unknown) => {
      const parsed = contactSchema.shape[name].safeParse(value);
      return parsed.success ? parsed.data : undefined;
    };
    const fields = contact as Record<string, unknown>;
    return {
      wa_id: field('wa_id', fields.wa_id) as string | undefined,
      user_id: field('user_id', fields.user_id) as string | undefined,
      profile: field('profile', fields.profile) as MetaContact['profile'],
      partial: true,
    };
  });
}

/**
 * Meta's contacts array is parallel to messages; match by user_id or wa_id. A lone contact
 * is taken only when nothing in it contradicts the message: some messages (a contact-request
 * reply from a username user) carry no sender of their own.
 */
function findContact(contacts: (ReadContact | null)[], from?: string, userId?: string): MetaContact | undefined {
  const matched = contacts.find((c) => c && ((userId && c.user_id === userId) || (from && c.wa_id === from)));
  if (matched || contacts.length !== 1) return matched ?? undefined;
  const lone = contacts[0];
  // A field left out could have been the one that contradicts the message.
  if (!lone || lone.partial) return undefined;
  const contradicts = (from && lone.wa_id && lone.wa_id !== from) || (userId && lone.user_id && lone.user_id !== userId);
  return contradicts ? undefined : lone;
}

function toStatusItem(raw: unknown, context: ChangeContext, at: string): LedgerItem {
  const { rawBody } = context;
  const parsed = metaStatusSchema.safeParse(raw);
  if (!parsed.success) return malformedPart(rawBody, at, parsed.error.issues);
  const status = parsed.data;
  // Its payload is stored as it came, like a message's, and could not be serialised either.
  if (nestsDeeperThan(raw, MAX_MESSAGE_DEPTH)) return malformedPart(rawBody, at, [NESTED_TOO_DEEP]);
  return {
    kind: 'status',
    source: 'whatsapp',
    messageId: status.id,
    receipt: status.status,
    recipient: status.recipient_id ?? status.recipient_user_id ?? null,
    timestampSeconds: Number(status.timestamp),
    payload: raw,
    // Its key may be gone (cleanup keeps receipts' keys for RETENTION_DAYS): a replay of it is
    // refused by its signed timestamp, as a message's is.
    ...(isOutsideWindow(Number(status.timestamp), context) ? { outsideReplayWindow: true } : {}),
  };
}
