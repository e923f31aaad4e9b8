import { checkWorkerConfig, type Config } from '../config';
import { closeDatabase, databaseFromConfig, type Sql } from '../db/client';
import { replyClientFromConfig } from '../replies/from-config';
import { TWILIO_WEBHOOK_PATH } from '../webhooks/twilio';
import { createBroker, type Broker } from '../queue/broker';
import { refreshQueueGauges, topologyFromConfig } from '../queue/depths';
import { countUnknownReplies } from '../orders/reply-operations';
import { countStuckMessages, stuckAfterMs } from '../ledger/stuck';
import { createPublisher } from '../queue/publisher';
import { assertTopology, type Topology } from '../queue/topology';
import type { Logger } from '../telemetry/logger';
import { createMetrics, startMetricsServer, type Metrics } from '../telemetry/metrics';
import { createWorkerConsumer } from '../worker/consumer';
import { processMessage } from '../worker/process-message';
import { loadReplyCatalogues } from '../orders/replies';
import { postgresAnswers } from '../db/health';
import { boundPort, closeServerNow } from '../server/http-server';
import { judgeReadiness } from '../server/readiness';

const QUEUE_GAUGE_INTERVAL_MS = 5000;

export interface RunningWorker {
  metricsPort: number;
  sql: Sql;
  broker: Broker;
  metrics: Metrics;
  topology: Topology;
  /** Settles when the broker setup failed for good (TOPOLOGY_CONFLICT); the process should stop and exit 1. */
  fatal: Promise<Error>;
  stop(): Promise<void>;
}

/** The unknown-replies gauge; while Postgres does not answer it has no value rather than a stale one. */
async function refreshUnknownReplies(sql: Sql, metrics: Metrics): Promise<void> {
  try {
    const counts = await countUnknownReplies(sql);
    for (const [provider, count] of Object.entries(counts)) metrics.repliesUnknown.set({ provider }, count);
  } catch {
    metrics.repliesUnknown.reset();
  }
}

export async function startWorker(config: Config, log: Logger): Promise<RunningWorker> {
  checkWorkerConfig(config);
  const metrics = createMetrics('worker');
  const sql = databaseFromConfig(config, 'wagate-worker');
  const topology = topologyFromConfig(config);
  const sendReply = replyClientFromConfig(config, TWILIO_WEBHOOK_PATH);
  // Read and checked before consuming anything: a broken catalogue stops the worker at start.
  const replyTexts = { catalogues: loadReplyCatalogues(config.REPLY_TEXTS_DIR), defaultLanguage: config.REPLY_LANGUAGE };
  let consumer: ReturnType<typeof createWorkerConsumer> | null = null;
  let reportFatal: (error: Error) => void = () => undefined;
  const fatal = new Promise<Error>((resolve) => (reportFatal = resolve));
  const broker = createBroker({
    url: config.AMQP_URL,
    name: 'wagate-worker',
    log,
    onFatal: (error) => reportFatal(error),
    setup: async (channel) => {
      await assertTopology(channel, topology);
      await consumer!.attach(channel);
    },
  });
  consumer = createWorkerConsumer({
    topology,
    prefetch: config.WORKER_PREFETCH,
    publisher: createPublisher(broker, config.PUBLISH_CONFIRM_TIMEOUT_MS),
    sql,
    log,
    metrics,
    handle: (message) =>
      processMessage(
        { sql, sendReply, metrics, match: { threshold: config.MATCH_THRESHOLD, ambiguityMargin: config.MATCH_AMBIGUITY_MARGIN }, replyTexts },
        message,
      ),
  });
  metrics.watchBroker(broker.isConnected, () => broker.loginRefusedSince() !== null);
  const stuckAfter = stuckAfterMs(config.RETRY_DELAYS_MS);
  const gauges = setInterval(() => {
    void refreshQueueGauges(broker, topology, metrics).catch(() => undefined);
    void refreshUnknownReplies(sql, metrics);
    void countStuckMessages(sql, stuckAfter).then(
      (count) => metrics.messagesStuck.set(count),
      () => metrics.messagesStuck.reset(),
    );
  }, QUEUE_GAUGE_INTERVAL_MS);
  let draining = false;
  const metricsServer = await startMetricsServer(metrics, config.METRICS_PORT, config.HOST, (req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}');
      return true;
    }
    if (req.url !== '/readyz') return false;
    void workerReadiness(sql, broker, draining).then(({ ready, body }) =>
      res.writeHead(ready ? 200 : 503, { 'Content-Type': 'application/json' }).end(JSON.stringify(body)),
    );
    return true;
  });
  log.info({ metricsPort: boundPort(metricsServer), shards: topology.shards.length, prefetch: config.WORKER_PREFETCH }, 'worker started');
  return {
    metricsPort: boundPort(metricsServer),
    sql,
    broker,
    metrics,
    topology,
    fatal,
    async stop() {
      draining = true;
      clearInterval(gauges);
      await consumer!.stop();
      await broker.close();
      await closeServerNow(metricsServer);
      await closeDatabase(sql, (error) => log.warn({ err: error.message }, 'database pool closed with an error'));
      log.info('worker stopped');
    },
  };
}

/** The worker cannot work without a broker channel, unlike ingest. */
async function workerReadiness(sql: Sql, broker: Broker, draining: boolean) {
  const postgres = await postgresAnswers(sql);
  return judgeReadiness({ postgres, brokerConnected: broker.isConnected(), draining, brokerRequired: true });
}
