import type { RequestListener } from 'node:http';
import { httpTimeouts, type Config } from '../config';
import { closeDatabase, databaseFromConfig, INGEST_APPLICATION_NAME, type Sql } from '../db/client';
import { createStallWatch, stallLimitMs, stallLiveness, type Liveness, type StallWatch } from '../db/stall-watch';
import { createIngestListener } from '../http/app';
import { assessReadiness, type HealthDeps } from '../http/health';
import { boundPort, closeServer, closeServerNow, listen } from '../server/http-server';
import { createOutboxRelay, type OutboxRelayOptions } from '../ledger/outbox-relay';
import { createLedgerRecorder, type LedgerRecorder, type QueuedEntry } from '../ledger/recorder';
import { createMetaAdapter } from '../webhooks/meta';
import { createTwilioAdapter } from '../webhooks/twilio';
import { createBroker, type Broker } from '../queue/broker';
import { createQueueDepthsLookup, topologyFromConfig } from '../queue/depths';
import { createPublisher } from '../queue/publisher';
import { checkShardCountAtStart, checkShardCountUntilDone } from '../ledger/shard-count';
import { declareShardTopology } from '../ledger/shard-topology';
import { unroutedTopology, type Topology } from '../queue/topology';
import type { Logger } from '../telemetry/logger';
import { finishedWithin, settleWithin } from '../settle-within';
import { createMetrics, replyReceiptStatus, type Metrics } from '../telemetry/metrics';
import { startMetricsServer } from '../server/metrics-server';
import { refuseWrongDatabaseLogin, createSharedPostgresCheck } from '../db/health';
import { warmUpLedger } from '../ledger/warm-up';
import { rehearseWebhooks } from '../http/webhook-rehearsal';

/** The most a start spends warming up before it reports ready anyway (a slow or absent database). */
const WARM_UP_DEADLINE_MS = 10_000;
/**
 * After the server has closed, everything SIGTERM still waits for must end within the chart's
 * grace beyond SHUTDOWN_TIMEOUT_MS and the preStop pause (10 s): commits under way, publishes
 * and their confirms (SETTLE_AFTER_REQUESTS_MS at most), then closing the broker channel and
 * connection and the pool, each of which a hung peer could hold for seconds. Anything
 * unfinished is safe in the outbox, where another pod's sweep takes it once its lease expires.
 */
const STOP_AFTER_REQUESTS_MS = 8_000;
const SETTLE_AFTER_REQUESTS_MS = 6_000;
/** With ACK_AFTER=commit nothing waits for the publish, so messages may gather this long. */
const DEFAULT_PUBLISH_LINGER_MS = 10;

export interface RunningIngest {
  port: number;
  metricsPort: number;
  sql: Sql;
  broker: Broker;
  metrics: Metrics;
  topology: Topology;
  /** Settles when the broker setup failed for good (TOPOLOGY_CONFLICT); the process should stop and exit 1. */
  fatal: Promise<Error>;
  /** Settles once the start's warm-up is over (done, failed or past its deadline): /readyz no longer says warmingUp. */
  warmedUp: Promise<void>;
  stop(): Promise<void>;
}

export async function startIngest(config: Config, log: Logger): Promise<RunningIngest> {
  warnAboutUnsafeSettings(config, log);
  const metrics = createMetrics('ingest');
  const sql = databaseFromConfig(config, INGEST_APPLICATION_NAME);
  await refuseWrongDatabaseLogin(sql, config.DATABASE_URL).catch(async (error: unknown) => {
    await sql.end({ timeout: 1 });
    throw error;
  });
  const topology = topologyFromConfig(config);
  let shardCountChecked = await checkShardCountAtStart(sql, config.QUEUE_PREFIX, config.WORK_SHARDS, log).catch(async (error: unknown) => {
    await closeDatabase(sql);
    throw error;
  });
  let reportFatal: (error: Error) => void = () => undefined;
  const fatal = new Promise<Error>((resolve) => (reportFatal = resolve));
  const stopShardCountCheck = new AbortController();
  const broker = createBroker({
    url: config.AMQP_URL,
    name: 'wagate-ingest',
    log,
    onFatal: (error) => reportFatal(error),
    setup: async (channel) => declareShardTopology(sql, channel, topology, config.QUEUE_PREFIX, log),
  });
  const brokerTakesPublishes = () => broker.isConnected() && broker.blockedSince() === null;
  const relayOptions: OutboxRelayOptions = {
    sql,
    publisher: createPublisher(broker, config.PUBLISH_CONFIRM_TIMEOUT_MS),
    topology,
    // Nothing goes out before WORK_SHARDS is checked against the stored count: with another
    // count, a sender's messages would go to a shard queue no worker reads.
    canPublish: () => shardCountChecked && brokerTakesPublishes(),
    leaseSeconds: config.OUTBOX_LEASE_SECONDS,
    confirmTimeoutMs: config.PUBLISH_CONFIRM_TIMEOUT_MS,
    maxMessageBytes: config.BROKER_MAX_MESSAGE_BYTES,
    pollMs: config.OUTBOX_POLL_MS,
    publishLingerMs: config.PUBLISH_LINGER_MS ?? (config.ACK_AFTER === 'publish' ? 0 : DEFAULT_PUBLISH_LINGER_MS),
    log,
    metrics,
  };
  const relay = createOutboxRelay(relayOptions);
  metrics.watchBroker({
    connected: broker.isConnected,
    loginRefused: () => broker.loginRefusedSince() !== null,
    blocked: () => broker.blockedSince() !== null,
  });
  broker.onConnected(() => {
    // Whatever piled up in the outbox while the broker was away goes out now.
    void relay.sweepOnce().catch(() => undefined);
  });
  if (!shardCountChecked) {
    checkShardCountUntilDone(sql, config.QUEUE_PREFIX, config.WORK_SHARDS, log, stopShardCountCheck.signal).then(
      (checked) => {
        shardCountChecked = checked;
        if (checked) void relay.sweepOnce().catch(() => undefined);
      },
      (error: Error) => reportFatal(error),
    );
  }
  let draining = false;
  let warmingUp = true;
  const stallWatch = createStallWatch(stallLimitMs(config.DB_CONNECT_TIMEOUT_SECONDS, config.DB_STATEMENT_TIMEOUT_MS, config.DB_STALL_LIMIT_MS));
  // Restarted, the pod's pool starts afresh; until then every commit slot held by a dead
  // connection is one fewer, and with all of them held each request is answered 503.
  const liveness = stallLiveness(stallWatch, log, 'its commits find live connections again');
  // Said in the log even where nothing probes /healthz.
  const livenessTold = setInterval(liveness, LIVENESS_LOG_INTERVAL_MS).unref();
  const parts: IngestParts = {
    stallWatch,
    liveness,
    sql,
    metrics,
    log,
    onQueued: relay.publishOwned,
    isBrokerConnected: broker.isConnected,
    isBrokerLoginRefused: () => broker.loginRefusedSince() !== null,
    isBrokerBlocked: () => broker.blockedSince() !== null,
    isDraining: () => draining,
    isWarmingUp: () => warmingUp,
    queueDepths: createQueueDepthsLookup(broker, topology),
  };
  const { listener, recorder } = createIngestRequestListener(config, parts);
  const timeouts = {
    ...httpTimeouts(config),
    answerWaitMs: commitDeadlineMs(config) + (config.ACK_AFTER === 'publish' ? config.ACK_PUBLISH_TIMEOUT_MS : 0),
  };
  const server = await listen(listener, config.PORT, config.HOST, timeouts);
  const metricsServer = await startMetricsServer(metrics, config.METRICS_PORT, config.HOST, httpTimeouts(config));
  relay.start();
  log.info({ port: boundPort(server), metricsPort: boundPort(metricsServer) }, 'ingest listening');
  // Listening already (liveness answers), but not ready until the pool is warm: an autoscaled
  // pod meets full traffic the moment /readyz says ready.
  // The same listener over a ledger that rolls every batch back, a relay whose publishes no
  // queue takes, and metrics nobody scrapes: the whole path runs, and nothing of it is kept.
  const rehearsalListener = () => {
    const rehearsalMetrics = createMetrics('ingest', { processMetrics: false });
    // Its publishes go to no queue, so they need no checked shard count.
    const unrouted = createOutboxRelay({ ...relayOptions, canPublish: brokerTakesPublishes, topology: unroutedTopology(topology), metrics: rehearsalMetrics });
    return createIngestRequestListener(config, { ...parts, metrics: rehearsalMetrics, onQueued: unrouted.publishOwned, rehearsal: true }).listener;
  };
  const warmedUp = warmUp(config, sql, log, rehearsalListener).finally(() => void (warmingUp = false));

  return {
    port: boundPort(server),
    metricsPort: boundPort(metricsServer),
    sql,
    broker,
    metrics,
    topology,
    fatal,
    warmedUp,
    async stop() {
      draining = true;
      clearInterval(livenessTold);
      stopShardCountCheck.abort();
      await closeServer(server, config.SHUTDOWN_TIMEOUT_MS);
      const within = finishedWithin(STOP_AFTER_REQUESTS_MS);
      const settled = await settleWithin(
        recorder.drain().then(() => relay.stop()).then(() => true),
        SETTLE_AFTER_REQUESTS_MS,
        false,
      );
      if (!settled) {
        // The relay was to stop after the drain: stopped now all the same (its polls and lease
        // renewals end at once), or a sweep could claim rows and publish them on the closing channel.
        void relay.stop().catch(() => undefined);
        log.warn({ waitedMs: SETTLE_AFTER_REQUESTS_MS }, 'stopping with commits or publishes still under way; their outbox rows go to the next sweep');
      }
      const brokerClosed = await within(broker.close());
      await closeServerNow(metricsServer);
      const poolClosed = await within(closeDatabase(sql, (error) => log.warn({ err: error.message }, 'database pool closed with an error')));
      if (!brokerClosed || !poolClosed) {
        log.warn({ brokerClosed, poolClosed, waitedMs: STOP_AFTER_REQUESTS_MS }, "stopping without waiting longer for the broker or the database to close; the pod's grace period would end first");
      }
      log.info('ingest stopped');
    },
  };
}

async function warmUp(config: Config, sql: Sql, log: Logger, rehearsalListener: () => RequestListener): Promise<void> {
  const started = performance.now();
  // Rehearsed with a Meta secret only: Meta's is the busier path, and its code is most of Twilio's.
  const appSecret = config.WHATSAPP_APP_SECRET[0];
  const requests = config.WARM_UP_REHEARSAL_REQUESTS;
  const deadlinePassed = new AbortController();
  // The pool first, so that the rehearsal's batches find every connection open and prepared.
  const work = warmUpLedger({
    sql,
    connections: ledgerConnections(config),
    rateLimits: config.rateLimits,
    outboxLeaseSeconds: config.OUTBOX_LEASE_SECONDS,
  })
    .then(() =>
      appSecret === undefined || requests === 0 || deadlinePassed.signal.aborted ? 0 : rehearseWebhooks(rehearsalListener(), appSecret, requests, deadlinePassed.signal),
    )
    .catch((error: unknown) => error as Error);
  const outcome = await settleWithin(work, WARM_UP_DEADLINE_MS, 'deadline' as const);
  // Ready without it: the rehearsal sends nothing more, and the requests under way finish.
  if (outcome === 'deadline') deadlinePassed.abort();
  const ms = Math.round(performance.now() - started);
  if (typeof outcome === 'number') log.info({ ms, connections: ledgerConnections(config), rehearsed: outcome }, 'ingest warmed up: pool open, ledger statement prepared, webhook path rehearsed');
  else if (outcome === 'deadline') log.warn({ ms }, 'ingest warm-up still unfinished; ready without it');
  else log.warn({ ms, err: outcome.message }, 'ingest warm-up failed; readiness now follows Postgres');
}

/** How often the ingest looks whether a commit waits past its limit, to say so in the log. */
const LIVENESS_LOG_INTERVAL_MS = 5000;

/** Group commits at once; two connections stay for the relay and for health checks. */
function ledgerConnections(config: Config): number {
  return Math.max(1, config.DB_POOL_MAX - 2);
}

export interface IngestParts {
  sql: Sql;
  metrics: Metrics;
  log: Logger;
  /** Called with the rows of each commit; the outbox relay publishes them (true once all are confirmed). */
  onQueued(entries: QueuedEntry[]): Promise<boolean> | void;
  isBrokerConnected(): boolean;
  isBrokerLoginRefused?(): boolean;
  isBrokerBlocked?(): boolean;
  isDraining(): boolean;
  isWarmingUp?(): boolean;
  /** Times the ledger's commits; liveness fails while one waits past its limit. */
  stallWatch?: StallWatch;
  liveness?(): Liveness;
  queueDepths(alongside?: Promise<unknown>): Promise<{ queue: number | null; deadLetters: number | null }>;
  /** The warm-up's rehearsal: the ledger rolls every batch back. */
  rehearsal?: boolean;
}

/** The ingest's request listener and the recorder behind it, from the configuration: everything but the ports. */
export function createIngestRequestListener(config: Config, parts: IngestParts): { listener: RequestListener; recorder: LedgerRecorder } {
  const { sql, metrics, log } = parts;
  const recorder = createLedgerRecorder({
    sql,
    rateLimits: config.rateLimits,
    outboxLeaseSeconds: config.OUTBOX_LEASE_SECONDS,
    maxBatchItems: config.LEDGER_BATCH_MAX,
    lingerMs: config.LEDGER_LINGER_MS,
    maxConcurrentBatches: ledgerConnections(config),
    commitDeadlineMs: commitDeadlineMs(config),
    onQueued: parts.onQueued,
    rollBack: parts.rehearsal,
    stallWatch: parts.stallWatch,
    ackAfterPublishMs: config.ACK_AFTER === 'publish' ? config.ACK_PUBLISH_TIMEOUT_MS : undefined,
    onPublishWait: (result) => metrics.ackAfterPublish.inc({ result }),
    onIsolating: (error) =>
      log.warn({ code: (error as { code?: string }).code, err: (error as Error).message }, 'a ledger batch failed; committing its requests apart'),
    onBatch: (items, seconds) => {
      metrics.ledgerBatchSize.observe(items);
      metrics.ledgerCommitDuration.observe(seconds);
    },
    onReplyReceipt: (source, receipt) => metrics.replyReceipts.inc({ source, status: replyReceiptStatus(receipt) }),
    onLateCommit: (recorded) => recorded.forEach(({ source, outcome }) => metrics.ledgerLateCommits.inc({ source, outcome })),
  });
  const health: HealthDeps = {
    postgresAnswers: createSharedPostgresCheck(sql),
    isBrokerConnected: parts.isBrokerConnected,
    isBrokerLoginRefused: parts.isBrokerLoginRefused,
    isBrokerBlocked: parts.isBrokerBlocked,
    isDraining: parts.isDraining,
    isWarmingUp: parts.isWarmingUp,
    brokerRequired: false,
    liveness: parts.liveness,
  };
  metrics.watchReadiness(async () => (await assessReadiness(health)).ready);
  const listener = createIngestListener({
    meta: createMetaAdapter({ appSecrets: config.WHATSAPP_APP_SECRET, replayWindowSeconds: config.REPLAY_WINDOW_SECONDS }),
    twilio: createTwilioAdapter({
      authTokens: config.TWILIO_AUTH_TOKEN,
      sharedKeys: config.TWILIO_WEBHOOK_SHARED_KEY,
      publicBaseUrl: config.PUBLIC_BASE_URL,
      urlFragment: config.TWILIO_URL_FRAGMENT,
      skipValidation: config.TWILIO_SKIP_VALIDATION,
    }),
    recorder,
    metrics,
    log,
    maxBodyBytes: config.MAX_BODY_BYTES,
    bodyTimeoutMs: config.WEBHOOK_BODY_TIMEOUT_MS,
    maxInFlight: config.MAX_IN_FLIGHT,
    maxInFlightBytes: config.MAX_IN_FLIGHT_BYTES,
    verifyToken: config.WHATSAPP_VERIFY_TOKEN,
    health,
    stats: {
      sql,
      adminToken: config.ADMIN_TOKEN,
      rateLimit: { requests: config.ADMIN_RATE_LIMIT_PER_MINUTE, windowMs: 60_000, trustedProxies: config.TRUSTED_PROXIES },
      queueDepths: parts.queueDepths,
    },
    untraced: parts.rehearsal,
    traceTrustedProxies: config.TRACE_TRUSTED_PROXIES,
  });
  return { listener, recorder };
}

/** How long Meta goes on retrying a webhook it could not deliver. */
const META_RETRY_SECONDS = 7 * 24 * 3600;

function warnAboutUnsafeSettings(config: Config, log: Logger): void {
  if (config.TWILIO_SKIP_VALIDATION) {
    log.warn('TWILIO_SKIP_VALIDATION=true: Twilio signatures are NOT checked. Never use this outside development.');
  }
  if (config.WHATSAPP_APP_SECRET.length === 0) log.warn('WHATSAPP_APP_SECRET is not set: every Meta POST will be refused with 401');
  else if (config.REPLAY_WINDOW_SECONDS < META_RETRY_SECONDS) {
    log.warn({ replayWindowSeconds: config.REPLAY_WINDOW_SECONDS, metaRetrySeconds: META_RETRY_SECONDS },
      'REPLAY_WINDOW_SECONDS is shorter than the 7 days Meta retries a webhook for: after an outage longer than the window, Meta\'s retries of messages sent before it are answered 200 and recorded replay_rejected, and never become orders. Keep the default (8 days) unless replays matter more than those messages');
  }
  if (config.TWILIO_SKIP_VALIDATION) return;
  if (config.TWILIO_AUTH_TOKEN.length + config.TWILIO_WEBHOOK_SHARED_KEY.length === 0) {
    log.warn('neither TWILIO_AUTH_TOKEN nor TWILIO_WEBHOOK_SHARED_KEY is set: every Twilio POST will be refused with 401');
    return;
  }
  if (config.TWILIO_AUTH_TOKEN.length === 0) {
    log.warn('TWILIO_WEBHOOK_SHARED_KEY is set without TWILIO_AUTH_TOKEN: Twilio POSTs that no Webhook Rule signs (no X-Twilio-Webhooks-Signature-Settings) will be refused with 401');
  }
  if (!config.PUBLIC_BASE_URL) {
    log.warn('PUBLIC_BASE_URL is not set: Twilio signs the URL it called, so every Twilio POST will be refused with 401');
  }
}

/** How long a request waits for its commit, slot and batch included, before it is answered 503. */
function commitDeadlineMs(config: Config): number {
  return config.DB_STATEMENT_TIMEOUT_MS + 2000;
}
