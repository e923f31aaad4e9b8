import { context, defaultTextMapGetter, ROOT_CONTEXT, SpanStatusCode, trace, type Attributes, type Context } from '@opentelemetry/api';
import { suppressTracing, W3CTraceContextPropagator } from '@opentelemetry/core';
import { withoutNumbers } from './without-numbers';

const tracer = trace.getTracer('wagate');

/**
 * Runs work inside a span. Without a started SDK the API hands out non-recording spans,
 * so this costs next to nothing when tracing is off.
 */
export async function withSpan<T>(name: string, attributes: Attributes, work: () => Promise<T>, parent?: Context): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, parent ?? context.active(), async (span) => {
    try {
      return await work();
    } catch (error) {
      // The message may be a provider's text that quotes the customer's number.
      const { name, message, stack } = error as Error;
      span.recordException({ name, message: withoutNumbers(String(message)), ...(stack ? { stack: withoutNumbers(stack) } : {}) });
      span.setStatus({ code: SpanStatusCode.ERROR, message: withoutNumbers(String(message)) });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Runs work with tracing suppressed: the instrumentations open no span for it (e.g. for its HTTP client requests). */
export function untraced<T>(work: () => T): T {
  return context.with(suppressTracing(context.active()), work);
}

/**
 * wagate's own header: a message carries its trace as a W3C traceparent whatever
 * OTEL_PROPAGATORS says (b3 for a Zipkin mesh, say), so that it is read back as written.
 */
export const traceContextPropagator = new W3CTraceContextPropagator();

/** The context a W3C traceparent header describes, to continue a trace across the queue. */
export function contextFromTraceparent(traceparent: unknown): Context {
  return typeof traceparent === 'string' && traceparent ? traceContextPropagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter) : ROOT_CONTEXT;
}

export function activeTraceIds(): { trace_id: string; span_id: string } | Record<string, never> {
  const spanContext = trace.getSpan(context.active())?.spanContext();
  return spanContext && trace.isSpanContextValid(spanContext) ? { trace_id: spanContext.traceId, span_id: spanContext.spanId } : {};
}
