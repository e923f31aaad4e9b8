import type { NodeSDK } from '@opentelemetry/sdk-node';
import { readSecretFile } from '../config';
import { ConfigError } from '../errors';

/**
 * Starts the OpenTelemetry SDK only when an OTLP endpoint is configured. The SDK would
 * otherwise default to an OTLP exporter aimed at localhost, so without this check tracing
 * would cost on every request and fail to export.
 */
export function isTracingConfigured(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && env.OTEL_SDK_DISABLED !== 'true';
}

/** The standard variables of the collector's request headers: each may also be given as NAME_FILE. */
const OTLP_HEADER_VARIABLES = ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'] as const;

/**
 * The comma-separated key=value list the exporters parse, from pairs separated by commas or
 * given one per line (as a file or a YAML block holds them). The exporters split on commas
 * only: a line break left in a value makes Node refuse every export request, and nothing says
 * so while the process runs.
 */
function headerList(name: string, value: string): string {
  const pairs = value.split(/[\r\n,]+/).map((pair) => pair.trim()).filter(Boolean);
  if (pairs.some((pair) => /[\x00-\x08\x0a-\x1f\x7f]/.test(pair))) {
    throw new ConfigError(`${name}: a header holds a control character, which no HTTP request may carry; give key=value pairs separated by commas or lines`);
  }
  return pairs.join(',');
}

export interface TracingOptions {
  /** `wagate <command>`: names the service and picks the instrumentations. */
  command: string;
}

/**
 * The commands that trace: the services a message passes through. The autoscaler's Kubernetes
 * and Postgres calls (a lease try every 2 s) would each be a trace of one span, and a one-shot
 * command (`send`, `replies resend`) exits without the flush that the services' stops run, so
 * its spans were lost, leaving the gateway's spans a parent that never arrived.
 */
const TRACED_COMMANDS = new Set(['ingest', 'worker', 'dev']);

/**
 * How long the amqplib instrumentation lets a consume span stay open before ending it as failed
 * (its default is 60 s). A delivery is held longer than that only during an incident (a sender's
 * chain behind slow provider calls, a hand-over through a broker memory alarm, a Postgres stall),
 * when traces are read; the worker always acks, nacks or closes the channel, which ends the span.
 */
export const CONSUME_SPAN_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/**
 * The OTLP protocol the traces go by: the traces' own variable, else the general one, else
 * http/protobuf. Empty is unset, as everywhere else here and in OpenTelemetry's own rules (a
 * compose file's `${X:-}` passes one), not a protocol to refuse.
 */
export function tracesProtocol(env: NodeJS.ProcessEnv): 'http/protobuf' | 'http/json' {
  const variable = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = env[variable] || 'http/protobuf';
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    throw new ConfigError(`${variable}: "${protocol}" is not supported; use http/protobuf or http/json`);
  }
  return protocol;
}

export function startTracing(env: NodeJS.ProcessEnv, options: TracingOptions): NodeSDK | null {
  if (!isTracingConfigured(env)) return null;
  const protocol = tracesProtocol(env);
  // The collector's credentials (an API key in a header) may come from a mounted Secret too.
  // Written into env, since the exporters read their headers from the environment themselves.
  for (const name of OTLP_HEADER_VARIABLES) {
    const headers = readSecretFile(name, env) ?? env[name];
    if (headers !== undefined) env[name] = headerList(name, headers);
  }
  // Checked above for every command, the migration hook's among them: a setting that stops
  // the ingest and the worker fails the upgrade there, before any pod is replaced.
  if (!TRACED_COMMANDS.has(options.command)) return null;
  // Loaded here, not at the top: without an endpoint none of the SDK or its instrumentations
  // is even required, so tracing costs nothing (not even start-up time or memory).
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { OTLPTraceExporter: OtlpJsonExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
  const { OTLPTraceExporter: OtlpProtoExporter } = require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const { ExpressInstrumentation, ExpressLayerType } = require('@opentelemetry/instrumentation-express') as typeof import('@opentelemetry/instrumentation-express');
  const { AmqplibInstrumentation } = require('@opentelemetry/instrumentation-amqplib') as typeof import('@opentelemetry/instrumentation-amqplib');
  const { UndiciInstrumentation } = require('@opentelemetry/instrumentation-undici') as typeof import('@opentelemetry/instrumentation-undici');
  // Both exporters read the endpoint, headers and timeout from the standard OTEL_* variables.
  const traceExporter = protocol === 'http/json' ? new OtlpJsonExporter() : new OtlpProtoExporter();
  const instrumentations = [
    // Outgoing requests only. The ingest opens its server spans itself (src/http/app.ts and the
    // webhook handler), so that a webhook POST's sampling decision comes before any other
    // tracing work; the instrumentation, even for the requests it was told to ignore, entered
    // a context and bound the request and response to it, on every request. The worker and
    // the autoscaler serve only health checks and scrapes, which are not traced, and the fake
    // provider's requests (a test and demo stand-in for Meta and Twilio) go untraced too.
    new HttpInstrumentation({ disableIncomingRequestInstrumentation: true }),
    // One span per middleware (raw body, limits, timing) costs more than it tells.
    new ExpressInstrumentation({ ignoreLayersType: [ExpressLayerType.MIDDLEWARE] }),
    new UndiciInstrumentation(),
    // The publisher opens its own publish span, for sampled messages only (src/queue/publisher.ts),
    // where the amqplib instrumentation would wrap every publish, sampled or not. The worker
    // keeps it for the consume span, which continues the trace that publish started.
    ...(options.command === 'worker' ? [new AmqplibInstrumentation({ consumeTimeoutMs: CONSUME_SPAN_TIMEOUT_MS })] : []),
  ];
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME || `wagate-${options.command}`,
    traceExporter,
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations,
  });
  sdk.start();
  return sdk;
}
