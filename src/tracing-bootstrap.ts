/**
 * Loaded first by main.ts, before express, http and amqplib are required, because the
 * instrumentations patch modules as they load. Reads only the standard OTEL_* variables.
 */
import { startTracing } from './telemetry/tracing';

const command = process.argv[2] ?? 'cli';

function startTracingOrExit() {
  try {
    return startTracing(process.env, `wagate-${command}`);
  } catch (error) {
    // Runs before main's error handling exists: answer like a configuration error, not a stack trace.
    process.stderr.write(`wagate ${command}: invalid configuration: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

export const tracingSdk = startTracingOrExit();
