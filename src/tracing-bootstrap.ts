/**
 * Loaded first by main.ts, before express, http and amqplib are required, because the
 * instrumentations patch modules as they load. Reads only the standard OTEL_* variables.
 * The ingest opens its server spans itself (src/http/app.ts, src/http/webhook-handler.ts).
 */
import { settleWithin } from './settle-within';
import type { Logger } from './telemetry/logger';
import { startTracing } from './telemetry/tracing';
import { redactUrl } from './telemetry/redact-url';

const command = process.argv[2] ?? 'cli';

function startTracingOrExit() {
  try {
    return startTracing(process.env, { command });
  } catch (error) {
    // Runs before main's error handling exists: answer like a configuration error, not a stack trace.
    process.stderr.write(`wagate ${command}: invalid configuration: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

export const tracingSdk = startTracingOrExit();

/**
 * The most a stopping process waits for the spans still to be exported. The exporter's own
 * timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by default) would take a hung collector past the
 * pod's grace period, which the ingest's and the worker's stops already use nearly all of.
 */
const TRACE_FLUSH_AT_STOP_MS = 1500;

/** Exports the spans still waiting and shuts the SDK down, within TRACE_FLUSH_AT_STOP_MS; never throws. */
export async function flushTracing(log: Logger): Promise<void> {
  if (!tracingSdk) return;
  const failure = await settleWithin(
    tracingSdk.shutdown().then(() => null, (error: Error) => error.message),
    TRACE_FLUSH_AT_STOP_MS,
    `no answer within ${TRACE_FLUSH_AT_STOP_MS} ms`,
  );
  if (failure === null) return;
  const endpoint = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  log.warn({ err: failure, endpoint: endpoint && redactUrl(endpoint) }, 'spans not exported: the collector did not take them in time');
}
