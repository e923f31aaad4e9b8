import { FUTURE_SKEW_SECONDS } from '../config';
import type { LedgerItem, MessageItem } from '../ledger/items';
import { verifyHmac } from './hmac';
import { describeIssues, malformedItem, type InboundRequest, type WebhookAdapter } from './adapter';
import {
  messageContentSchemas,
  messagesValueSchema,
  metaEnvelopeSchema,
  metaMessageSchema,
  metaStatusSchema,
  type MetaContact,
} from './meta-schema';

export const META_WEBHOOK_PATH = '/api/v1/whatsapp-hardened/webhook';
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
    toItems: (request, receivedAtMs) => parseMetaBody(request.rawBody, receivedAtMs, options.replayWindowSeconds),
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
  let json: unknown;
  try {
    json = JSON.parse(rawBody.toString('utf8'));
  } catch {
    return [malformedItem('whatsapp', rawBody, 'body is not valid JSON')];
  }
  const envelope = metaEnvelopeSchema.safeParse(json);
  if (!envelope.success) return [malformedItem('whatsapp', rawBody, describeIssues(envelope.error.issues))];

  const items: LedgerItem[] = [];
  for (const entry of envelope.data.entry) {
    for (const change of entry.changes) {
      // Other webhook fields (account updates, templates) carry no customer messages.
      if (change.field !== 'messages') continue;
      const value = messagesValueSchema.safeParse(change.value);
      if (!value.success) {
        items.push(malformedItem('whatsapp', rawBody, describeIssues(value.error.issues)));
        continue;
      }
      const context = {
        business: value.data.metadata.phone_number_id,
        contacts: value.data.contacts ?? [],
        receivedAtMs,
        replayWindowSeconds,
        rawBody,
      };
      for (const message of value.data.messages ?? []) items.push(toMessageItem(message, context));
      for (const status of value.data.statuses ?? []) items.push(toStatusItem(status, rawBody));
    }
  }
  return items;
}

interface ChangeContext {
  business: string;
  contacts: MetaContact[];
  receivedAtMs: number;
  replayWindowSeconds: number;
  rawBody: Buffer;
}

function toMessageItem(raw: unknown, context: ChangeContext): LedgerItem {
  const parsed = metaMessageSchema.safeParse(raw);
  const rawId = (raw as { id?: unknown } | null)?.id;
  const knownId = typeof rawId === 'string' && rawId.length > 0 && rawId.length <= 256 ? rawId : undefined;
  if (!parsed.success) return malformedItem('whatsapp', context.rawBody, describeIssues(parsed.error.issues), knownId);
  const message = parsed.data;
  const contentSchema = messageContentSchemas[message.type];
  const content = contentSchema?.safeParse((raw as Record<string, unknown>)[message.type]);
  if (content && !content.success) {
    const issues = content.error.issues.map((issue) => ({ ...issue, path: [message.type, ...issue.path] }));
    return malformedItem('whatsapp', context.rawBody, describeIssues(issues), message.id);
  }
  const contact = findContact(context.contacts, message.from, message.from_user_id);
  const userId = contact?.user_id ?? message.from_user_id;
  const from = message.from ?? userId;
  if (!from) return malformedItem('whatsapp', context.rawBody, 'message has neither from nor a user_id', message.id);
  const senderKey = userId ?? from;
  const timestampSeconds = Number(message.timestamp);
  const nowSeconds = context.receivedAtMs / 1000;
  const outsideWindow =
    nowSeconds - timestampSeconds > context.replayWindowSeconds || timestampSeconds - nowSeconds > FUTURE_SKEW_SECONDS;
  const item: MessageItem = {
    kind: 'message',
    source: 'whatsapp',
    messageId: message.id,
    sender: from,
    senderKey,
    business: context.business,
    type: message.type,
    timestampSeconds,
    verdict: outsideWindow ? 'replay_rejected' : 'queued',
    payload: {
      v: 1,
      source: 'whatsapp',
      messageId: message.id,
      from,
      senderKey,
      business: context.business,
      contactName: contact?.profile?.name ?? null,
      type: message.type,
      timestampSeconds,
      receivedAt: new Date(context.receivedAtMs).toISOString(),
      content: raw,
    },
  };
  return item;
}

/** Meta's contacts array is parallel to messages; match by user_id or wa_id, else a lone contact. */
function findContact(contacts: MetaContact[], from?: string, userId?: string): MetaContact | undefined {
  return (
    contacts.find((c) => (userId && c.user_id === userId) || (from && c.wa_id === from)) ??
    (contacts.length === 1 ? contacts[0] : undefined)
  );
}

function toStatusItem(raw: unknown, rawBody: Buffer): LedgerItem {
  const parsed = metaStatusSchema.safeParse(raw);
  if (!parsed.success) return malformedItem('whatsapp', rawBody, describeIssues(parsed.error.issues));
  const status = parsed.data;
  return {
    kind: 'status',
    source: 'whatsapp',
    messageId: status.id,
    receipt: status.status,
    recipient: status.recipient_id ?? status.recipient_user_id ?? null,
    timestampSeconds: Number(status.timestamp),
    payload: raw,
  };
}
