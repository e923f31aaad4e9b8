/**
 * Loaded first by main.ts, before express, http and amqplib are required, because the
 * instrumentations patch modules as they load. Reads only the standard OTEL_* variables.
 */
import { startTracing } from './telemetry/tracing';

const command = process.argv[2] ?? 'cli';
export const tracingSdk = startTracing(process.env, `wagate-${command}`);
