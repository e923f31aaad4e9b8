/**
 * Loaded first by main.ts, before express, http and amqplib are required, because the
 * instrumentations patch modules as they load. Reads only the standard OTEL_* variables.
 * The webhook handler opens the webhook POSTs' server spans itself (src/http/webhook-handler.ts).
 */
import { startTracing } from './telemetry/tracing';
import { isWebhookPost } from './webhooks/paths';

const command = process.argv[2] ?? 'cli';

function startTracingOrExit() {
  try {
    return startTracing(process.env, { command, opensOwnServerSpan: (req) => isWebhookPost(req.method, req.url) });
  } catch (error) {
    // Runs before main's error handling exists: answer like a configuration error, not a stack trace.
    process.stderr.write(`wagate ${command}: invalid configuration: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

export const tracingSdk = startTracingOrExit();
