import { context, defaultTextMapSetter, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { contextFromTraceparent, traceContextPropagator } from './spans';
import { isSampledTraceparent } from './traceparent';

const tracer = trace.getTracer('wagate');

export interface PublishTarget {
  exchange: string;
  routingKey: string;
  messageId: string;
}

/**
 * The publish span of a message whose trace is sampled, as a child of the span its
 * traceparent names; null for any other message, which gets no span, no context and no
 * attribute work: its traceparent travels unchanged.
 */
export function startPublishSpan(traceparent: string, target: PublishTarget): Span | null {
  if (!isSampledTraceparent(traceparent)) return null;
  const destination = target.exchange || 'amq.default';
  return tracer.startSpan(
    `publish ${destination}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'rabbitmq',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'publish',
        'messaging.destination.name': destination,
        'messaging.rabbitmq.destination.routing_key': target.routingKey,
        'messaging.message.id': target.messageId,
      },
    },
    contextFromTraceparent(traceparent),
  );
}

/**
 * Writes the publish span's context into the message headers, so the consumer's spans are its
 * children: as wagate's own traceparent, which a retry's hand-over carries on, and in the
 * configured propagators' headers, which the worker's amqplib instrumentation reads.
 */
export function injectPublishSpan(span: Span, headers: Record<string, unknown>): void {
  const spanContext = trace.setSpan(ROOT_CONTEXT, span);
  traceContextPropagator.inject(spanContext, headers, defaultTextMapSetter);
  propagation.inject(spanContext, headers);
}

/** The headers wagate writes itself (W3C trace context and baggage). */
const W3C_FIELDS = new Set(['traceparent', 'tracestate', 'baggage']);

/**
 * Writes an unsampled message's context in the configured propagators' headers too (`x-b3-*`
 * for b3multi), which the worker's consume instrumentation reads: without them it started a
 * new trace there, sampled anew, and the worker's logs lost the message's trace id. Under the
 * default propagators its traceparent is all there is to write, and nothing is done.
 */
export function injectConfiguredPropagators(traceparent: string, headers: Record<string, unknown>): void {
  if (!traceparent || propagation.fields().every((field) => W3C_FIELDS.has(field))) return;
  propagation.inject(contextFromTraceparent(traceparent), headers);
}

/**
 * Runs the publish call with tracing suppressed below the publish span: where the amqplib
 * instrumentation is loaded (the worker, for its consume spans) it would otherwise add a
 * second publish span and overwrite the traceparent header with its own.
 */
export function inPublishSpan<T>(span: Span, publish: () => T): T {
  return context.with(suppressTracing(trace.setSpan(ROOT_CONTEXT, span)), publish);
}

export function endPublishSpan(span: Span, delivered: boolean): void {
  if (!delivered) span.setStatus({ code: SpanStatusCode.ERROR, message: 'the broker did not confirm the message, or returned it as unroutable' });
  span.end();
}
