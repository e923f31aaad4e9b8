import { randomBytes } from 'node:crypto';
import { context, trace } from '@opentelemetry/api';

/**
 * The W3C traceparent for work started now: the active span's when tracing runs, otherwise
 * fresh unsampled ids, so that logs and queue messages still correlate at no export cost.
 */
export function currentTraceparent(): string {
  const span = trace.getSpan(context.active());
  const spanContext = span?.spanContext();
  if (spanContext && trace.isSpanContextValid(spanContext)) {
    const flags = spanContext.traceFlags.toString(16).padStart(2, '0');
    return `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
  }
  const ids = randomBytes(24).toString('hex');
  return `00-${ids.slice(0, 32)}-${ids.slice(32)}-00`;
}
