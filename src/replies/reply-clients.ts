import { Agent, buildConnector, type Dispatcher } from 'undici';
import { graphError, twilioError } from './provider-errors';
import { metaVerdict, twilioVerdict, type MetaAnswer } from './reply-verdicts';

/**
 * Sending one text reply through Meta's Graph API or Twilio's REST API, and sorting every
 * answer into the four outcomes the worker acts on. Each call is made once: retrying is the
 * queue's job, through its tiers, so an operator can tell what a customer may receive.
 */
export type SendOutcome =
  | { kind: 'sent'; providerMessageId: string }
  /** Definitely not taken (refused connection, 429, the provider's own 503, codes it documents as "not taken"): safe to try again later. */
  | { kind: 'retry'; error: string; retryAfterMs?: number }
  /** No retry can fix it (bad recipient, outside the 24-hour window, bad credentials). */
  | { kind: 'permanent'; error: string }
  /** The provider may have taken it (a timeout, a 500/502/504 or a proxy's 503 that names no refusal): never resent blindly. */
  | { kind: 'unknown'; error: string };

export interface ReplyTarget {
  source: 'whatsapp' | 'twilio';
  /** Customer address: wa_id (or, without a number, the user id) for Meta, "whatsapp:+..." for Twilio. */
  to: string;
  /** Business number: Meta phone_number_id, Twilio "whatsapp:+..." that received the message. */
  from: string;
  body: string;
  /**
   * What the provider echoes in the message's receipts, so that they name the reply even when
   * the answer to the send was lost: Meta's biz_opaque_callback_data (at most 512 characters),
   * and a parameter of Twilio's StatusCallback URL.
   */
  reference?: string;
}

export interface ReplyClientOptions {
  graphApiUrl: string;
  graphApiVersion: string;
  accessToken: string | undefined;
  twilioApiUrl: string;
  twilioAccountSid: string | undefined;
  twilioAuthToken: string | undefined;
  /** Where Twilio should post the reply's status callbacks (our own webhook); none when unset. */
  twilioStatusCallback?: string;
  timeoutMs: number;
}

/**
 * Connection errors raised before any byte of the request could have been sent: the socket,
 * and the TLS handshake (a certificate that does not verify, or a port that does not speak TLS).
 */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Errors a connection attempt ended with: nothing of a request goes out before it is made. */
const failedToConnect = new WeakSet<object>();

/**
 * undici's own connector, whose failures are marked as made before any request byte: a reset
 * during the TLS handshake (a draining load balancer, an egress filter) or a happy-eyeballs
 * attempt that timed out carry codes that a reset after the request was written carries too.
 */
function connectorMarkingFailures(timeout: number): buildConnector.connector {
  const connect = buildConnector({ timeout });
  return (connectOptions, callback) =>
    connect(connectOptions, (...args) => {
      if (args[0]) failedToConnect.add(args[0]);
      callback(...args);
    });
}

/**
 * A connection that cannot be made must fail as such (nothing sent: retry), not run into the
 * request deadline, which reads as "maybe sent" (unknown). So connecting gets its own, shorter
 * deadline.
 */
function connectTimeoutMs(requestTimeoutMs: number): number {
  return Math.max(100, Math.min(5000, Math.floor(requestTimeoutMs / 2)));
}

/** What the classifiers read of an answer. */
interface Answer {
  status: number;
  ok: boolean;
  retryAfter: string | undefined;
}

/** As many redirects as fetch follows, so that a proxy's 307 or 308 keeps working. */
const MAX_REDIRECTS = 20;
/**
 * The most of an answer's body that is read: Graph's and Twilio's answers are a few hundred
 * bytes. A proxy or endpoint streaming more, to every call in hand at once, would fill the
 * worker's memory; such an answer is read as empty and judged by its status.
 */
const MAX_ANSWER_BYTES = 1024 * 1024;

/**
 * undici's request() rather than fetch(): the same connection pool, deadlines and redirects,
 * without the WHATWG streams and response objects that made fetch the largest part of the
 * worker's own CPU per reply.
 */
export function createReplyClient(options: ReplyClientOptions) {
  const dispatcher = new Agent({ connect: connectorMarkingFailures(connectTimeoutMs(options.timeoutMs)), maxRedirections: MAX_REDIRECTS, maxResponseSize: MAX_ANSWER_BYTES });
  return async function sendReply(target: ReplyTarget): Promise<SendOutcome> {
    const request = target.source === 'whatsapp' ? metaRequest(options, target) : twilioRequest(options, target);
    if ('missing' in request) return { kind: 'permanent', error: `${request.missing} is not configured` };
    let response: Dispatcher.ResponseData;
    const signal = AbortSignal.timeout(options.timeoutMs);
    try {
      const url = new URL(request.url);
      response = await dispatcher.request({ origin: url.origin, path: `${url.pathname}${url.search}`, ...request.init, signal });
    } catch (error) {
      return classifyNetworkError(error);
    }
    // The deadline covers the body too: a provider that sends headers and then stalls is unknown,
    // like a silent one. null: the body was cut or did not arrive.
    const text = await response.body.text().catch(() => null);
    const header = response.headers['retry-after'];
    const answer = {
      status: response.statusCode,
      ok: response.statusCode >= 200 && response.statusCode < 300,
      retryAfter: Array.isArray(header) ? header[0] : header,
    };
    return target.source === 'whatsapp' ? classifyMeta(answer, text) : classifyTwilio(answer, text);
  };
}

export type ReplyClient = ReturnType<typeof createReplyClient>;

function metaRequest(options: ReplyClientOptions, target: ReplyTarget) {
  if (!options.accessToken) return { missing: 'WHATSAPP_ACCESS_TOKEN' } as const;
  return {
    url: `${trim(options.graphApiUrl)}/${options.graphApiVersion}/${encodeURIComponent(target.from)}/messages`,
    init: {
      method: 'POST' as const,
      headers: { Authorization: `Bearer ${options.accessToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        messaging_product: 'whatsapp',
        recipient_type: 'individual',
        ...metaAddressee(target.to),
        type: 'text',
        text: { body: target.body, preview_url: false },
        ...(target.reference ? { biz_opaque_callback_data: target.reference } : {}),
      }),
    },
  };
}

/**
 * A number goes in `to`; a customer Meta knows only by their business-scoped user id (one who
 * chose a username, whose number Meta leaves out of webhooks) in `recipient`, which Meta
 * documents for user ids ("US.13491208655302741918"), with no `to`.
 */
function metaAddressee(address: string): { to: string } | { recipient: string } {
  return /^\+?\d+$/.test(address) ? { to: address } : { recipient: address };
}

/**
 * The query parameter of a reply's status callback URL that carries its reference: Twilio posts
 * the callbacks to that URL and signs it whole, so the ingest reads the reference from it as
 * signed (webhooks/twilio.ts; the fold reads it from the receipt as ledger/fold-receipts.ts's
 * TWILIO_REPLY_REFERENCE_PARAM, the same name).
 */
const TWILIO_REPLY_REFERENCE_PARAM = 'wagate_reply';

/**
 * The callback URL with the reference in its query, ahead of any #fragment (Twilio's connection
 * overrides). Spliced into the text as configured, not rebuilt: Twilio signs the URL as given,
 * and the ingest checks it against PUBLIC_BASE_URL as written, which URL would rewrite (a host
 * in capitals or in Unicode, characters of the fragment).
 */
function statusCallbackFor(callback: string, reference: string | undefined): string {
  if (!reference) return callback;
  const hash = callback.indexOf('#');
  const [base, fragment] = hash === -1 ? [callback, ''] : [callback.slice(0, hash), callback.slice(hash)];
  return `${base}${base.includes('?') ? '&' : '?'}${TWILIO_REPLY_REFERENCE_PARAM}=${encodeURIComponent(reference)}${fragment}`;
}

function twilioRequest(options: ReplyClientOptions, target: ReplyTarget) {
  if (!options.twilioAccountSid) return { missing: 'TWILIO_ACCOUNT_SID' } as const;
  if (!options.twilioAuthToken) return { missing: 'TWILIO_AUTH_TOKEN' } as const;
  const credentials = Buffer.from(`${options.twilioAccountSid}:${options.twilioAuthToken}`).toString('base64');
  return {
    url: `${trim(options.twilioApiUrl)}/2010-04-01/Accounts/${encodeURIComponent(options.twilioAccountSid)}/Messages.json`,
    init: {
      method: 'POST' as const,
      headers: { Authorization: `Basic ${credentials}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        To: target.to,
        From: target.from,
        Body: target.body,
        ...(options.twilioStatusCallback ? { StatusCallback: statusCallbackFor(options.twilioStatusCallback, target.reference) } : {}),
      }).toString(),
    },
  };
}

/**
 * Errors raised while the request is built, before anything is sent: a header value or a URL
 * that cannot be sent as configured. Nothing went out, and the same configuration fails the
 * same way on every try.
 */
const NOT_BUILT_CODES = new Set(['UND_ERR_INVALID_ARG', 'ERR_INVALID_URL', 'ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN']);

function classifyNetworkError(error: unknown): SendOutcome {
  const cause = (error as { cause?: { code?: string } }).cause;
  // The first that is a string: a timeout's DOMException has a numeric code (23), and its name says it.
  const code = [cause?.code, (error as { code?: unknown }).code, (error as Error).name].find((candidate): candidate is string => typeof candidate === 'string');
  const beforeRequest = failedToConnect.has(error as object) || (typeof cause === 'object' && cause !== null && failedToConnect.has(cause));
  if (beforeRequest || (code && NOT_SENT_CODES.has(code))) return { kind: 'retry', error: `connection failed (${code})` };
  if (code && NOT_BUILT_CODES.has(code)) {
    return { kind: 'permanent', error: `the request could not be built, so nothing was sent (${code}: ${(error as Error).message}); check the provider settings` };
  }
  // A timeout or reset after connecting: the provider may have accepted the message.
  return { kind: 'unknown', error: `no answer from the provider (${code ?? 'error'})` };
}

function classifyMeta(response: Answer, text: string | null): SendOutcome {
  const body = parseJson(text ?? '') as MetaAnswer | null;
  const id = body?.messages?.[0]?.id;
  if (response.ok && id) return { kind: 'sent', providerMessageId: id };
  if (response.ok) return { kind: 'unknown', error: 'Graph API answered 2xx without a message id' };
  // Meta answers code 1 ("maybe taken") with a 400 as well as a refusal: only the body's code
  // tells them apart, so a 4xx whose body could not be read may have been taken.
  if (text === null && metaVerdict(response.status, undefined, false) === 'permanent') {
    return { kind: 'unknown', error: `Graph API ${response.status}: its body was cut or did not arrive, so whether the message was taken is unknown` };
  }
  const own = graphError(body?.error);
  const code = own?.code;
  const error = `Graph API ${response.status}${code !== undefined ? ` code ${code}` : ''}: ${body?.error?.message ?? 'no error body'}`;
  const verdict = metaVerdict(response.status, code, own?.isTransient === true, own !== null);
  return verdict === 'retry' ? { kind: 'retry', error, retryAfterMs: retryAfter(response) } : { kind: verdict, error };
}

function classifyTwilio(response: Answer, text: string | null): SendOutcome {
  const body = parseJson(text ?? '') as { sid?: string; code?: number; message?: string } | null;
  if (response.ok && body?.sid) return { kind: 'sent', providerMessageId: body.sid };
  if (response.ok) return { kind: 'unknown', error: 'Twilio answered 2xx without a message sid' };
  // A Twilio 4xx creates no message, whatever its code; cut before its code, the answer does
  // not say whether the refusal is for good (21211) or for now (63018), so it is tried again.
  if (text === null && response.status >= 400 && response.status < 500) {
    return { kind: 'retry', error: `Twilio ${response.status}: its body was cut or did not arrive, so whether the refusal is for good is unknown`, retryAfterMs: retryAfter(response) };
  }
  const code = twilioError(body)?.code;
  const error = `Twilio ${response.status}${code !== undefined ? ` code ${code}` : ''}: ${body?.message ?? 'no error body'}`;
  const verdict = twilioVerdict(response.status, code);
  return verdict === 'retry' ? { kind: 'retry', error, retryAfterMs: retryAfter(response) } : { kind: verdict, error };
}

function retryAfter(response: Answer): number | undefined {
  const header = response.retryAfter;
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function trim(url: string): string {
  return url.replace(/\/+$/, '');
}
