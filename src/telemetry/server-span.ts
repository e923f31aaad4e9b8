import type { IncomingMessage } from 'node:http';
import { INVALID_SPAN_CONTEXT, isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { contextFromTraceparent } from './spans';

const tracer = trace.getTracer('wagate');

/**
 * Opens the server span of an ingest request (the HTTP instrumentation handles outgoing
 * requests only, see tracing.ts). It is the request's one sampling decision: the SDK's
 * configured sampler runs inside startSpan, and an unsampled request gets a non-recording
 * span that only carries ids, so the attributes below, the context and the child spans are
 * never built for it. `name` is the semantic conventions' "{method} {route}", or the method
 * alone until a route is known (nameServerSpan). `trustsCaller`: the request came from a
 * trusted proxy, whose traceparent may be the parent (src/http/caller-trace.ts).
 */
export function startServerSpan(req: IncomingMessage, name: string, trustsCaller: boolean, route?: string): Span {
  // A trusted proxy's context is read in whatever headers the configured propagators name (b3
  // for a Zipkin mesh); anyone else's traceparent is only linked, and no header costs nothing.
  const span = trustsCaller || req.headers.traceparent !== undefined ? startUnderCaller(req, name, trustsCaller) : tracer.startSpan(name, { kind: SpanKind.SERVER }, ROOT_CONTEXT);
  if (span.isRecording()) {
    // Set after the decision rather than passed to startSpan, so an unsampled request does
    // not build them; the SDK's samplers (always_*, traceidratio, parentbased_*) do not read them.
    span.setAttributes({
      'http.request.method': req.method ?? 'POST',
      ...(route === undefined ? {} : { 'http.route': route }),
      'url.path': pathOf(req.url),
      'url.scheme': 'http',
      'network.protocol.version': req.httpVersion,
      'user_agent.original': req.headers['user-agent'],
    });
  }
  return span;
}

/**
 * A trusted caller's context is the parent (a parent-based sampler follows its flag); anyone
 * else's traceparent is only linked, so that it neither chooses the trace nor forces sampling.
 */
function startUnderCaller(req: IncomingMessage, name: string, trustsCaller: boolean): Span {
  if (trustsCaller) return tracer.startSpan(name, { kind: SpanKind.SERVER }, propagation.extract(ROOT_CONTEXT, req.headers));
  const callerSpan = trace.getSpanContext(contextFromTraceparent(req.headers.traceparent));
  const links = callerSpan && isSpanContextValid(callerSpan) ? [{ context: callerSpan }] : [];
  return tracer.startSpan(name, { kind: SpanKind.SERVER, links }, ROOT_CONTEXT);
}

/**
 * The server span of a request that is never traced, whatever the sampler: the ingest's own
 * warm-up rehearsal. Its unsampled traceparent keeps it out only of parent-based samplers; under
 * always_on or traceidratio its thousands of requests would each export a trace, their
 * publishes (returned by the broker, by design) marked failed.
 */
export function untracedServerSpan(): Span {
  return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
}

/**
 * Names a server span after the route that answered, once the router has matched one (the
 * semantic conventions' "{method} {route}"); a request no route took keeps the method alone,
 * not its path, which anyone can make up.
 */
export function nameServerSpan(span: Span, method: string, route: string | undefined): void {
  if (!span.isRecording() || route === undefined) return;
  span.setAttribute('http.route', route);
  span.updateName(`${method} ${route}`);
}

/** Ends a server span with the answer's status: only a 5xx marks it failed (a 4xx is the client's). */
export function endServerSpan(span: Span, statusCode: number, answered: boolean): void {
  if (!span.isRecording()) return;
  if (!answered) span.setStatus({ code: SpanStatusCode.ERROR, message: 'the client closed the connection before the answer' });
  else span.setAttribute('http.response.status_code', statusCode);
  if (answered && statusCode >= 500) {
    span.setAttribute('error.type', String(statusCode));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

function pathOf(url: string | undefined): string {
  if (!url) return '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
