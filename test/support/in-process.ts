import type { RequestListener } from 'node:http';
import express from 'express';
import { inject, type InjectOptions, type Response } from 'light-my-request';
import { createIngestRequestListener } from '../../src/commands/ingest';
import { loadConfig, type Config } from '../../src/config';
import type { Sql } from '../../src/db/client';
import { createLogger, type Logger } from '../../src/telemetry/logger';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics';
import { testEnv } from './ingest';

export interface InProcessIngest {
  config: Config;
  metrics: Metrics;
  /** One request handed straight to the ingest's listener: no port, no socket, no child process. */
  request(options: InjectOptions): Promise<Response>;
  drain(): Promise<void>;
}

/**
 * The ingest's request listener as `wagate ingest` builds it, on a real recorder and the
 * given database, without a server or a broker: committed messages stay in the outbox,
 * which is what a broker outage looks like to the ingest.
 */
export function createInProcessIngest(sql: Sql, databaseUrl: string, overrides: Record<string, string> = {}, log?: Logger, isDraining = () => false): InProcessIngest {
  const config = loadConfig(testEnv(databaseUrl, overrides));
  const metrics = createMetrics('ingest');
  const { listener, recorder } = createIngestRequestListener(config, {
    sql,
    metrics,
    log: log ?? createLogger(config.LOG_LEVEL, 'wagate-test'),
    onQueued: () => undefined,
    isBrokerConnected: () => false,
    isDraining,
    queueDepths: async () => ({ queue: null, deadLetters: null }),
  });
  return {
    config,
    metrics,
    request: async (options) => {
      await expressLinked;
      return inject(listener as RequestListener, options);
    },
    drain: () => recorder.drain(),
  };
}

/**
 * light-my-request's request and response stand in for node's, but express gives each
 * request and response its own prototypes, which inherit from node's; light-my-request
 * relinks those (shared by every express app in the process) when it is handed an express
 * app. The ingest's listener wraps its app, so one bare app is handed over first.
 */
const expressLinked = inject(express(), { method: 'GET', url: '/' });

/** The current value of one counter series, so a test can compare before and after. */
export async function counterValue(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  const values = metric ? (await metric.get()).values : [];
  const series = values.find((value) => Object.entries(labels).every(([key, wanted]) => String(value.labels[key]) === wanted));
  return series?.value ?? 0;
}
