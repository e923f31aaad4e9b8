import type { SignatureRejection } from '../webhooks/signature-rejection';
import type { Source } from '../config';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { context, ROOT_CONTEXT, trace, type Span } from '@opentelemetry/api';
import { isDatabaseUnavailable } from '../db/postgres-errors';
import { isWagateError } from '../errors';
import type { LedgerRecorder } from '../ledger/recorder';
import { malformedItem, type InboundRequest, type ParsedWebhook, type WebhookAdapter } from '../webhooks/adapter';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { endServerSpan, startServerSpan, untracedServerSpan } from '../telemetry/server-span';
import { withSpan } from '../telemetry/spans';
import { withoutNumbers } from '../telemetry/without-numbers';
import { currentTraceparent, traceparentOf } from '../telemetry/traceparent';
import { mayBeLarge, reserveAsBytesArrive, upfrontReservation } from './body-budget';
import type { InFlightLimit } from './in-flight-limit';
import { readRawBody } from './read-body';

export interface WebhookHandlerDeps {
  adapter: WebhookAdapter;
  /** The route the handler serves, for its server span's name and http.route. */
  path: string;
  recorder: LedgerRecorder;
  limit: InFlightLimit;
  maxBodyBytes: number;
  bodyTimeoutMs: number;
  metrics: Metrics;
  log: Logger;
  /** The warm-up rehearsal's requests: never traced, whatever the sampler (untracedServerSpan). */
  untraced?: boolean;
  /** Whether a request came from a trusted proxy, whose traceparent may parent its span (callerTraceTrust). */
  trustsCallerTrace: (req: IncomingMessage) => boolean;
}

export type WebhookHandler = (req: IncomingMessage, res: ServerResponse) => void;

const TEXT = 'text/plain; charset=utf-8';

/**
 * One webhook POST, on node's own request and response: limit, read the raw bytes, verify,
 * parse, record, answer. It needs no framework, so the server hands it the two webhook
 * paths before express sees them (express's routing and response helpers cost more CPU
 * per request than the signature check, the parse and the ledger together). The signature
 * is checked on the raw bytes before anything reads them; a 200 waits for the ledger commit
 * of every item in the body.
 */
/** At most one signature warning per source in this interval. */
const SIGNATURE_WARNING_INTERVAL_MS = 60_000;

const SHARED_HINTS = {
  missing_header: 'the request carries no signature header: not from the provider, or a proxy dropped the header',
  too_many_params: 'the form has more parameters than any Twilio webhook sends; it was refused without being read',
};
const SIGNATURE_HINTS: Record<Source, Record<SignatureRejection, string>> = {
  whatsapp: {
    ...SHARED_HINTS,
    bad_format: 'X-Hub-Signature-256 is not "sha256=" and 64 hex digits',
    no_secret_configured: 'WHATSAPP_APP_SECRET is not set',
    no_match: 'no configured secret produces this signature: check WHATSAPP_APP_SECRET against the app secret in Meta\'s app dashboard',
  },
  twilio: {
    ...SHARED_HINTS,
    bad_format: 'X-Twilio-Signature is not a base64 HMAC of the length its algorithm gives, or X-Twilio-Webhooks-Signature-Settings names no algorithm Twilio signs with (HMAC_SHA1, HMAC_SHA256)',
    no_secret_configured:
      'no secret is set for this request: TWILIO_AUTH_TOKEN, or, when it carries X-Twilio-Webhooks-Signature-Settings (a Webhook Rule signed it with a shared key), TWILIO_WEBHOOK_SHARED_KEY',
    no_match:
      'no configured secret produces this signature: check PUBLIC_BASE_URL, and TWILIO_AUTH_TOKEN, or TWILIO_WEBHOOK_SHARED_KEY for a request with X-Twilio-Webhooks-Signature-Settings',
  },
};

export function createWebhookHandler(deps: WebhookHandlerDeps): WebhookHandler {
  const { adapter, recorder, limit, metrics, log } = deps;
  const source = adapter.source;
  const maxBodyBytes = Math.min(deps.maxBodyBytes, adapter.maxBodyBytes ?? Infinity);

  /**
   * Every answer is timed, except the instant refusal of an overloaded pod (it did no work).
   * Those refused before or at the signature check are labelled apart: anyone can send them,
   * and a forged body dribbled for seconds must not move the latency that alerts page on.
   */
  function answer(res: ServerResponse, startedAt: number | null, verified: boolean, status: number, contentType: string, body: string, retryAfter?: string): void {
    if (startedAt !== null) metrics.ackDuration.observe({ source, verified: String(verified) }, (performance.now() - startedAt) / 1000);
    const headers: Record<string, string | number> = { 'content-type': contentType, 'content-length': Buffer.byteLength(body) };
    if (retryAfter) headers['retry-after'] = retryAfter;
    res.writeHead(status, headers).end(body);
  }

  // One warning a minute per source: a wrong secret refuses every request, and one line says so.
  let lastSignatureWarningMs = -Infinity;
  function warnAboutSignature(reason: SignatureRejection): void {
    const now = Date.now();
    if (now - lastSignatureWarningMs < SIGNATURE_WARNING_INTERVAL_MS) return;
    lastSignatureWarningMs = now;
    log.warn({ source, reason, hint: SIGNATURE_HINTS[source][reason] }, 'refused a webhook signature (more are counted in wagate_webhook_events_total, not logged, for a minute)');
  }

  const spanName = `POST ${deps.path}`;

  /**
   * A sampled request records in a child span of its server span and carries that span's
   * traceparent to the queue; an unsampled one opens no span and enters no context, and
   * carries its server span's unsampled ids so that logs and messages still correlate.
   */
  function recordItems(items: ParsedWebhook['items'], receivedAtMs: number, serverSpan: Span) {
    if (!serverSpan.isRecording()) return recorder.record({ items, receivedAtMs, traceparent: traceparentOf(serverSpan) });
    return withSpan('wagate.ledger.record', { 'wagate.source': source, 'wagate.items': items.length, 'db.system': 'postgresql' }, () =>
      recorder.record({ items, receivedAtMs, traceparent: currentTraceparent() }),
    );
  }

  async function handle(req: IncomingMessage, res: ServerResponse, startedAt: number, receivedAtMs: number, serverSpan: Span): Promise<void> {
    const read = await readRawBody(req, maxBodyBytes, deps.bodyTimeoutMs, () => res.writeContinue());
    if (!read.ok) {
      metrics.webhookEvents.inc({ source, outcome: read.failure.outcome });
      // The rest of the body stays unread: nothing else may follow on this connection.
      res.setHeader('connection', 'close');
      if (read.failure.outcome === 'overloaded') {
        answer(res, null, false, 503, TEXT, read.failure.message, '1');
        return;
      }
      if (read.failure.status !== null) answer(res, startedAt, false, read.failure.status, TEXT, read.failure.message);
      return;
    }
    const inbound: InboundRequest = {
      rawBody: read.body,
      header: (name) => headerValue(req, name),
      originalUrl: req.url ?? '/',
    };
    if (!adapter.verify(inbound)) {
      const reason = adapter.rejection(inbound);
      metrics.webhookEvents.inc({ source, outcome: 'invalid_signature', reason });
      warnAboutSignature(reason);
      answer(res, startedAt, false, 401, TEXT, 'invalid signature');
      return;
    }
    const { items, providerErrors } = parseSafely(adapter, inbound, receivedAtMs, log);
    for (const error of providerErrors) {
      metrics.webhookEvents.inc({ source, outcome: 'provider_error' });
      // Masked as every provider text is before it is logged: Meta's may quote a customer's number.
      const details = error.details === undefined ? undefined : withoutNumbers(error.details);
      log.warn({ source, code: error.code, title: withoutNumbers(error.title), details }, 'the provider reported an error in a webhook');
    }
    try {
      if (items.length === 0 && providerErrors.length === 0) metrics.webhookEvents.inc({ source, outcome: 'ignored' });
      const outcomes = await recordItems(items, receivedAtMs, serverSpan);
      for (const outcome of outcomes) metrics.webhookEvents.inc({ source, outcome });
    } catch (error) {
      metrics.webhookEvents.inc({ source, outcome: 'unavailable' });
      const code = (error as { code?: string }).code;
      if (!isDatabaseUnavailable(error) && !isWagateError(error, 'LEDGER_TIMEOUT')) log.error({ err: (error as Error).message, code, source }, 'ledger write failed');
      else log.warn({ code, source, err: (error as Error).message }, 'database unavailable; answering 503 so the provider retries');
      answer(res, startedAt, true, 503, TEXT, 'temporarily unavailable', '5');
      return;
    }
    answer(res, startedAt, true, 200, adapter.ack.contentType, adapter.ack.body);
  }

  return function handleWebhook(req, res) {
    // The clock for ack latency starts before any reading or parsing.
    const startedAt = performance.now();
    const receivedAtMs = Date.now();
    // The request's one sampling decision, before any other tracing work (see startServerSpan).
    const serverSpan = deps.untraced ? untracedServerSpan() : startServerSpan(req, spanName, deps.trustsCallerTrace(req), deps.path);
    res.once('close', () => {
      if (res.writableFinished) metrics.webhookRequests.inc({ source, code: String(res.statusCode) });
      endServerSpan(serverSpan, res.statusCode, res.writableFinished);
    });
    const bytes = upfrontReservation(req, maxBodyBytes);
    if (!limit.tryEnter(bytes)) {
      metrics.webhookEvents.inc({ source, outcome: 'overloaded' });
      // A small body is read to its end, so the connection serves again; a large or unannounced
      // one, which nothing limits here, closes it, as the other refusals of a body do.
      if (mayBeLarge(req)) res.setHeader('connection', 'close');
      req.resume();
      answer(res, null, false, 503, TEXT, 'overloaded', '1');
      return;
    }
    const reserved = reserveAsBytesArrive(req, limit, bytes);
    // The slot is held until the work is done, not until the client leaves: a provider that
    // gives up and retries must not be able to start more ledger work than MAX_IN_FLIGHT.
    // Sampled, the server span is the active span for the work, so that the ledger span is its
    // child and log lines carry its ids; unsampled, no context is entered at all. ROOT, not the
    // active context: the server span starts or continues the trace, nothing around it does.
    const work = serverSpan.isRecording()
      ? context.with(trace.setSpan(ROOT_CONTEXT, serverSpan), () => handle(req, res, startedAt, receivedAtMs, serverSpan))
      : handle(req, res, startedAt, receivedAtMs, serverSpan);
    work
      .catch((error: Error) => {
        log.error({ err: error.message, source }, 'webhook handler failed');
        if (res.headersSent) return;
        // Counted, so that the error-rate alert, whose denominator this answer is in, sees it:
        // whether the signature matched is not known here, and a failure of ours counts against us.
        metrics.webhookEvents.inc({ source, outcome: 'unavailable' });
        answer(res, startedAt, true, 503, TEXT, 'temporarily unavailable', '5');
      })
      .finally(() => limit.leave(reserved.finish()));
  };
}

/**
 * A parser bug must not turn a genuine, signed delivery into endless provider retries:
 * the body is kept as malformed (200), with the raw bytes, for an operator to look at.
 */
function parseSafely(adapter: WebhookAdapter, inbound: InboundRequest, receivedAtMs: number, log: Logger): ParsedWebhook {
  try {
    return adapter.parse(inbound, receivedAtMs);
  } catch (error) {
    log.error({ err: (error as Error).message, source: adapter.source }, 'parser failed on a signed body; recording it as malformed');
    return { items: [malformedItem(adapter.source, inbound.rawBody, 'the gateway could not parse this body')], providerErrors: [] };
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}
