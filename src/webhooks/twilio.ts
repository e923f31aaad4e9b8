import { exceedsFormParams, MAX_TWILIO_FORM_PARAMS, twilioRejection } from './signature-rejection';
import { TWILIO_SIGNATURE_FORMATS, TWILIO_SIGNATURE_SETTINGS_HEADER, twilioSigning } from './twilio-signing';
import { z } from 'zod';
import { TWILIO_REPLY_REFERENCE_PARAM, type LedgerItem } from '../ledger/items';
import { verifyHmac } from './hmac';
import { describeIssues } from '../errors';
import { MAX_ADDRESS_LENGTH, malformedItem, malformedKey, type InboundRequest, type WebhookAdapter } from './adapter';
import { bodyMatchesHash, readJsonBodyParams, readSignedBodyHash } from './twilio-json-body';

export { TWILIO_WEBHOOK_PATH } from './paths';
export const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>';

export interface TwilioAdapterOptions {
  authTokens: readonly string[];
  /** The secrets of the SharedKeys that Twilio's Webhook Rules sign with (TWILIO_WEBHOOK_SHARED_KEY). */
  sharedKeys?: readonly string[];
  /** The scheme and host Twilio calls, e.g. https://shop.example.com */
  publicBaseUrl: string | undefined;
  /**
   * The connection-override fragment configured on the webhook URL in Twilio (e.g.
   * "#rc=3&rp=ct,rt,5xx"). It never reaches us, and Twilio does not document whether it
   * signs it, so a signature over the URL with or without it is accepted.
   */
  urlFragment?: string;
  skipValidation: boolean;
}

/** Twilio adds parameters without notice, so unknown ones are kept, not refused. */
const inboundSchema = z.looseObject({
  MessageSid: z.string().min(1).max(64),
  From: z.string().min(1).max(MAX_ADDRESS_LENGTH),
  To: z.string().min(1).max(MAX_ADDRESS_LENGTH),
  Body: z.string().optional(),
  NumMedia: z.string().regex(/^\d+$/).optional(),
  ProfileName: z.string().optional(),
});
const statusCallbackSchema = z.looseObject({
  MessageSid: z.string().min(1).max(64),
  MessageStatus: z.string().min(1).max(32),
  To: z.string().max(MAX_ADDRESS_LENGTH).optional(),
});

/**
 * Twilio's webhook forms are a few kilobytes: a Body of at most 1,600 characters (under 15 kB
 * percent-encoded, even all emoji), ten media URLs and a few dozen short fields. A forged form
 * is decoded, sorted and hashed once per URL spelling and auth token before it can be refused:
 * at the shared 3 MiB cap that took 64 to 230 ms of CPU a request, so anyone could pin an
 * ingest's core with a few megabytes a second.
 */
export const MAX_TWILIO_BODY_BYTES = 128 * 1024;

export function createTwilioAdapter(options: TwilioAdapterOptions): WebhookAdapter {
  const secrets = { authTokens: options.authTokens, sharedKeys: options.sharedKeys ?? [] };
  return {
    source: 'twilio',
    maxBodyBytes: MAX_TWILIO_BODY_BYTES,
    ack: { contentType: 'text/xml; charset=utf-8', body: EMPTY_TWIML },
    verify: (request) => {
      if (options.skipValidation) return true;
      const signing = twilioSigning(request.header(TWILIO_SIGNATURE_SETTINGS_HEADER), secrets);
      const bodyHash = readSignedBodyHash(request.originalUrl);
      return (
        signing.scheme !== 'unreadable' &&
        couldBeTwilio(request, signing.algorithm, bodyHash === undefined) &&
        verifyTwilioSignature({
          secrets: signing.secrets,
          algorithm: signing.algorithm,
          url: joinUrl(options.publicBaseUrl, request.originalUrl),
          urlFragment: options.urlFragment,
          // A JSON body is signed through its hash in the URL, with no parameters.
          params: bodyHash === undefined ? parseForm(request.rawBody) : [],
          signature: request.header('x-twilio-signature'),
        }) &&
        (bodyHash === undefined || bodyMatchesHash(request.rawBody, bodyHash))
      );
    },
    rejection: (request) => twilioRejection(request, secrets),
    parse: (request, receivedAtMs) => ({
      items: withReplyReference(
        readSignedBodyHash(request.originalUrl) === undefined ? parseTwilioForm(request.rawBody, receivedAtMs) : parseTwilioJson(request.rawBody, receivedAtMs),
        request.originalUrl,
      ),
      providerErrors: [],
    }),
  };
}

/**
 * A reply's status callbacks come to the URL its send named, which carries the reply's
 * reference in its query (replies/reply-clients.ts), signed with the rest of the URL: kept with
 * each receipt's parameters, where the fold looks for it (ledger/fold-receipts.ts).
 */
function withReplyReference(items: LedgerItem[], originalUrl: string): LedgerItem[] {
  const query = originalUrl.indexOf('?');
  const reference = query === -1 ? null : new URLSearchParams(originalUrl.slice(query + 1)).get(TWILIO_REPLY_REFERENCE_PARAM);
  if (!reference) return items;
  return items.map((item) => (item.kind === 'status' ? { ...item, payload: { ...(item.payload as Record<string, string>), [TWILIO_REPLY_REFERENCE_PARAM]: reference } } : item));
}

/**
 * The cheap checks, before the form is decoded and sorted for the signature: anyone can send a
 * forged request, and a form of half a million parameters took a second of the event loop.
 */
function couldBeTwilio(request: InboundRequest, algorithm: 'sha1' | 'sha256', isForm: boolean): boolean {
  // A JSON body is hashed, not decoded, and its text may hold any number of "&".
  return TWILIO_SIGNATURE_FORMATS[algorithm].test(request.header('x-twilio-signature') ?? '') && !(isForm && exceedsFormParams(request.rawBody, MAX_TWILIO_FORM_PARAMS));
}

export type FormParams = [name: string, value: string][];

/** application/x-www-form-urlencoded, decoded ("+" is a space), in the order sent. */
export function parseForm(rawBody: Buffer): FormParams {
  return [...new URLSearchParams(rawBody.toString('utf8'))];
}

export interface TwilioSignatureCheck {
  /** The auth tokens, or a Webhook Rule's shared keys: every secret the signature may come from. */
  secrets: readonly string[];
  /** SHA-1 unless a Webhook Rule names another (twilio-signing.ts). */
  algorithm?: 'sha1' | 'sha256';
  url: string | undefined;
  /** Also try the URL with this fragment appended. */
  urlFragment?: string;
  params: FormParams;
  signature: string | undefined;
}

/**
 * Twilio's published algorithm: HMAC-SHA1 keyed by the auth token (or a Webhook Rule's
 * algorithm and shared key), over the full URL followed by each POST parameter name and
 * value, sorted by name. Like Twilio's own libraries, the URL is also tried with the default
 * port added or removed, because proxies differ on whether the signed URL carried ":443".
 */
export function verifyTwilioSignature(check: TwilioSignatureCheck): boolean {
  if (!check.signature || !check.url || check.secrets.length === 0) return false;
  const signedParams = twilioParamString(check.params);
  const urls = check.urlFragment ? [check.url, check.url + check.urlFragment] : [check.url];
  return urls.flatMap(urlVariants).some((url) =>
    verifyHmac({
      algorithm: check.algorithm ?? 'sha1',
      encoding: 'base64',
      secrets: check.secrets,
      data: url + signedParams,
      signature: check.signature!,
    }),
  );
}

/**
 * Names sorted, and a repeated name's values sorted with exact repeats counted once, as
 * Twilio's own libraries (twilio-node, twilio-python) build the signed string.
 */
export function twilioParamString(params: FormParams): string {
  const unique = new Map(params.map((pair) => [JSON.stringify(pair), pair]));
  return [...unique.values()]
    .sort(([a, av], [b, bv]) => (a === b ? compare(av, bv) : compare(a, b)))
    .map(([name, value]) => name + value)
    .join('');
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function urlVariants(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [url];
  }
  const defaultPort = parsed.protocol === 'https:' ? '443' : parsed.protocol === 'http:' ? '80' : '';
  // URL drops a default port, so a port left here is a non-default one: no variant to try.
  if (!defaultPort || parsed.port !== '') return [url];
  const hostPattern = new RegExp(`^(${parsed.protocol}//[^/?#]*?)(:${defaultPort})?(?=[/?#]|$)`, 'i');
  const withPort = url.replace(hostPattern, (_m, host: string) => `${host}:${defaultPort}`);
  const withoutPort = url.replace(hostPattern, (_m, host: string) => host);
  return [...new Set([url, withPort, withoutPort])];
}

function joinUrl(base: string | undefined, originalUrl: string): string | undefined {
  return base === undefined ? undefined : base.replace(/\/+$/, '') + originalUrl;
}

export function parseTwilioForm(rawBody: Buffer, receivedAtMs: number): LedgerItem[] {
  const pairs = parseForm(rawBody);
  // Every encoding of one signed form verifies under its signature (a pair repeated, split
  // anew, reordered, percent-encoded otherwise): kept under their bytes, one captured form posted
  // in a thousand encodings made a thousand malformed rows, each counted as an error. Under the
  // string that was signed they are one row and its duplicates, as a replay of a message is.
  const signedKey = () => malformedKey(twilioParamString(pairs));
  // Twilio sends each parameter once; read into one value, a repeat would let the poster pick
  // which of the signed values counts.
  const repeated = pairs.find(([name], index) => pairs.findIndex(([other]) => other === name) !== index);
  if (repeated) return [malformedItem('twilio', rawBody, `parameter ${repeated[0]} appears more than once, which Twilio never sends`, signedKey())];
  return parseTwilioParams(Object.fromEntries(pairs), rawBody, receivedAtMs, signedKey);
}

/** A JSON post's fields read as a form's; a body that is no JSON object is kept as malformed. */
function parseTwilioJson(rawBody: Buffer, receivedAtMs: number): LedgerItem[] {
  const body = readJsonBodyParams(rawBody);
  return 'refused' in body ? [malformedItem('twilio', rawBody, body.refused)] : parseTwilioParams(body.params, rawBody, receivedAtMs);
}

/** A Twilio message id: two letters (SM, MM) and 32 hex digits, always that long. */
export const TWILIO_MESSAGE_SID = /^[A-Z]{2}[0-9a-fA-F]{32}$/;
/** The parameters that make a form a receipt rather than a message. */
const STATUS_PARAMS = ['MessageStatus', 'SmsStatus'];

/**
 * Twilio signs a form's parameters run together, each name then its value, sorted by name,
 * with nothing between them. So the signed bytes of one genuine form can be split into other
 * parameters and still verify, and anyone who captured one could post it split anew:
 * `MessageSid=SM…MessageTypetext` with MessageType left out is a new message id, so a second
 * order and a second reply; `MessageSt=atusdelivered` turns a receipt into a message from the
 * shop's own number. A form is taken only as Twilio writes one: its MessageSid a Twilio id,
 * SmsSid and SmsMessageSid (when present) the same one, no parameter name a piece of a status
 * parameter's or longer than one, and a receipt's two statuses agreeing. Anything else is kept
 * as malformed, under its bytes rather than an id it may have forged. Answers the problem, or null.
 */
function resplitProblem(params: Record<string, string>): string | null {
  const sid = params.MessageSid;
  if (sid !== undefined && !TWILIO_MESSAGE_SID.test(sid)) return 'MessageSid is not a Twilio message id (two letters and 32 hex digits)';
  for (const alias of ['SmsSid', 'SmsMessageSid']) {
    if (sid !== undefined && params[alias] !== undefined && params[alias] !== sid) return `${alias} differs from MessageSid`;
  }
  for (const name of Object.keys(params)) {
    const piece = STATUS_PARAMS.find((status) => name !== status && (status.startsWith(name) || name.startsWith(status)) && `${name}${params[name]}`.startsWith(status));
    if (piece) return `parameter ${name} is a piece of ${piece} run into its value, not a parameter Twilio sends`;
  }
  const statuses = STATUS_PARAMS.map((status) => params[status]).filter((status) => status !== undefined);
  if (new Set(statuses).size > 1) return 'MessageStatus and SmsStatus differ';
  return foreignSignedId(params);
}

/** A message id written after a sid parameter's name, as the signed string runs them together (SmsMessageSid included). */
const SIGNED_SID = /(?:MessageSid|SmsSid)([A-Z]{2}[0-9a-fA-F]{32})/g;

/**
 * The signed string is the same however the form is split, so it still holds the genuine form's
 * MessageSid and its id after a new MessageSid was cut from a value the customer wrote: with the
 * genuine tail run into the last parameter's value, a Body such as "hiFromwhatsapp:+1555…
 * MessageSidSM…" became a new message from a sender of the poster's choosing. Every id the
 * signed string holds after a sid's name must be the form's own, or the message it replies to.
 * A customer who types such a run of text into a message gets it kept as malformed.
 */
function foreignSignedId(params: Record<string, string>): string | null {
  const replied = params.OriginalRepliedMessageSid;
  const own = new Set([params.MessageSid, ...(replied !== undefined && TWILIO_MESSAGE_SID.test(replied) ? [replied] : [])]);
  for (const [, id] of twilioParamString(Object.entries(params)).matchAll(SIGNED_SID)) {
    if (!own.has(id)) return 'the signed parameters hold a message id other than MessageSid after a sid\'s name: a form split anew from another one';
  }
  return null;
}

/** `keyIfMalformed` makes a malformed form's key, the same for every encoding of what was signed; a JSON post's comes from its bytes, which its signature covers. */
function parseTwilioParams(params: Record<string, string>, rawBody: Buffer, receivedAtMs: number, keyIfMalformed?: () => string): LedgerItem[] {
  const resplit = resplitProblem(params) ?? (params.SmsStatus && params.SmsStatus !== 'received' && !params.MessageStatus ? 'a receipt (SmsStatus) without MessageStatus' : null);
  if (resplit) {
    const item = malformedItem('twilio', rawBody, resplit, keyIfMalformed?.());
    if (params.From) item.sender = params.From;
    return [item];
  }
  // Status callbacks carry MessageStatus (and SmsStatus); an inbound message says "received" if anything.
  if (params.MessageStatus && params.MessageStatus !== 'received') {
    const status = statusCallbackSchema.safeParse(params);
    if (!status.success) return [malformedItem('twilio', rawBody, describeIssues(status.error.issues), keyIfMalformed?.())];
    return [
      {
        kind: 'status',
        source: 'twilio',
        messageId: status.data.MessageSid,
        receipt: status.data.MessageStatus,
        recipient: status.data.To ?? null,
        timestampSeconds: null,
        payload: params,
      },
    ];
  }
  const inbound = inboundSchema.safeParse(params);
  if (!inbound.success) {
    const item = malformedItem('twilio', rawBody, describeIssues(inbound.error.issues), boundedId(params.MessageSid) ?? keyIfMalformed?.());
    if (params.From) item.sender = params.From;
    return [item];
  }
  const message = inbound.data;
  const type = twilioMessageType(params);
  return [
    {
      kind: 'message',
      source: 'twilio',
      messageId: message.MessageSid,
      sender: message.From,
      senderKey: message.From,
      business: message.To,
      type,
      timestampSeconds: null,
      // Twilio signs no timestamp: replays are stopped by dedupe alone (keys kept for the full retention).
      verdict: 'queued',
      payload: {
        v: 1,
        source: 'twilio',
        messageId: message.MessageSid,
        from: message.From,
        senderKey: message.From,
        business: message.To,
        contactName: message.ProfileName ?? null,
        type,
        timestampSeconds: null,
        receivedAt: new Date(receivedAtMs).toISOString(),
        content: params,
      },
    },
  ];
}

function twilioMessageType(params: Record<string, string>): string {
  if (params.ButtonPayload || params.ButtonText) return 'button';
  if (params.ListId) return 'interactive';
  if (params.Latitude && params.Longitude) return 'location';
  if (Number(params.NumMedia ?? '0') > 0) return 'media';
  return 'text';
}

function boundedId(id: string | undefined): string | undefined {
  return id && id.length <= 64 ? id : undefined;
}
