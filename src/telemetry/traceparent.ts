import { randomUUID } from 'node:crypto';
import { context, trace, TraceFlags, type Span } from '@opentelemetry/api';

/**
 * The W3C traceparent for work started now: the active span's when tracing runs, otherwise
 * fresh unsampled ids, so that logs and queue messages still correlate at no export cost.
 */
export function currentTraceparent(): string {
  return traceparentOf(trace.getSpan(context.active()));
}

/** The traceparent of a span, recording or not; fresh unsampled ids when it has none (tracing off). */
export function traceparentOf(span: Span | undefined): string {
  const spanContext = span?.spanContext();
  if (spanContext && trace.isSpanContextValid(spanContext)) {
    const flags = spanContext.traceFlags.toString(16).padStart(2, '0');
    return `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
  }
  // randomUUID draws from a cached entropy pool, far cheaper per request than randomBytes.
  const traceId = randomUUID().replace(/-/g, '');
  const spanId = randomUUID().replace(/-/g, '').slice(0, 16);
  return `00-${traceId}-${spanId}-00`;
}

/** True when a traceparent (version 00: ...-flags) carries the sampled flag: its trace is exported. */
export function isSampledTraceparent(traceparent: string): boolean {
  return traceparent.length === 55 && (Number.parseInt(traceparent.slice(53), 16) & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
}
