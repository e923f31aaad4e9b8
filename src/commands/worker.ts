import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { checkWorkerConfig, httpTimeouts, type Config } from '../config';
import { closeDatabase, databaseFromConfig, type Sql } from '../db/client';
import { replyClientFromConfig } from '../replies/from-config';
import { TWILIO_WEBHOOK_PATH } from '../webhooks/twilio';
import { createBroker, type Broker } from '../queue/broker';
import { refreshQueueGauges, topologyFromConfig } from '../queue/depths';
import { abandonedSendAfterMs, countUnknownReplies, markAbandonedSends } from '../orders/reply-operations';
import { failureStreak } from '../telemetry/failure-streak';
import { personalDataOverdueSeconds } from '../ledger/personal-data-overdue';
import { countStuckMessages, stuckAfterMs } from '../ledger/stuck';
import { countHeldMessages } from '../ledger/held-messages';
import { countKeptThroughFailures } from '../telemetry/count-kept-through-failures';
import { createPublisher } from '../queue/publisher';
import { dropDeadLetters } from '../queue/dead-letters';
import { withOperatorChannel } from '../queue/operator-channel';
import { declareHandOverTarget, type Topology } from '../queue/topology';
import type { Logger } from '../telemetry/logger';
import { finishedWithin, settleWithin } from '../settle-within';
import { createMetrics, type Metrics } from '../telemetry/metrics';
import { startMetricsServer } from '../server/metrics-server';
import { createWorkerConsumer, type WorkerConsumer } from '../worker/consumer';
import { createMembershipStore } from '../worker/membership-store';
import { shardPrefetch } from '../worker/shard-prefetch';
import { createShardCoordinator, type ShardCoordinator } from '../worker/shard-coordinator';
import { withDeadLetterLock } from '../ledger/dead-letter-lock';
import { checkShardCountAtStart } from '../ledger/shard-count';
import { declareShardTopology } from '../ledger/shard-topology';
import { processMessage } from '../worker/process-message';
import { createStatementBatchers } from '../worker/statement-batchers';
import { shardLease } from '../worker/shard-lease';
import { createCatalogCache } from '../orders/catalog-cache';
import { cLocaleWarning } from '../orders/match';
import { loadReplyCatalogues } from '../orders/replies';
import { createSharedPostgresCheck, refuseWrongDatabaseLogin, type PostgresCheck } from '../db/health';
import { createStallWatch, stallLimitMs, stallLiveness } from '../db/stall-watch';
import { boundPort, closeServerNow } from '../server/http-server';
import { probeRoutes } from '../server/probe-routes';
import { judgeReadiness } from '../server/readiness';

const QUEUE_GAUGE_INTERVAL_MS = 5000;
/** Held messages wait for an operator for days, and a flood may hold many: counted once a minute. */
const HELD_COUNT_INTERVAL_MS = 60_000;
/**
 * After the drain (WORKER_DRAIN_TIMEOUT_MS), everything SIGTERM still waits for must end within
 * the chart's grace beyond it (15 s): closing both broker connections and the pool, each of which
 * a hung peer could hold for up to 10 s. Nothing is lost by going sooner: a message still unacked
 * goes back to its queue, and shards still held move once this worker's heartbeat expires.
 */
const STOP_AFTER_DRAIN_MS = 10_000;
/** How long a failed count from Postgres leaves the last one standing: about WagateMessagesStuck's 15 minutes. */
const COUNT_KEPT_MS = 15 * 60 * 1000;

export interface RunningWorker {
  metricsPort: number;
  sql: Sql;
  /** Unique per process; also in the names of its broker connections. */
  memberId: string;
  /** The consuming connection: topology, deliveries and their acks. */
  broker: Broker;
  /** The publishing connection: hand-overs to the retry tiers, the dead-letter queue and other shards. */
  publishBroker: Broker;
  metrics: Metrics;
  topology: Topology;
  coordinator: ShardCoordinator;
  /** Settles when the broker setup failed for good (TOPOLOGY_CONFLICT); the process should stop and exit 1. */
  fatal: Promise<Error>;
  stop(): Promise<void>;
}

/**
 * Hands every shard over (finishing the messages in hand first), within WORKER_DRAIN_TIMEOUT_MS
 * in all. Past it the process goes anyway: the broker requeues what is unacked, and the
 * shards left move once this worker's heartbeat expires. The consumer is stopped either way,
 * so that nothing new starts while the connections and the pool close.
 */
async function drainWithin(timeoutMs: number, coordinator: ShardCoordinator, consumer: WorkerConsumer, log: Logger): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const released = await coordinator.stop(timeoutMs);
  const stopped = await settleWithin(consumer.stop().then(() => true), released ? deadline - Date.now() : 0, false);
  if (released && !stopped) log.warn('drain timed out with messages in hand; the broker requeues them');
}

/** Unique per process, and readable in the membership table: host, pid and a random tail. */
function newMemberId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** How long a worker's drop of an erased customer's dead letter waits for another reader of the queue. */
const WORKER_DEAD_LETTER_LOCK_WAIT_MS = 5000;

export async function startWorker(config: Config, log: Logger): Promise<RunningWorker> {
  checkWorkerConfig(config);
  const metrics = createMetrics('worker');
  // One of the DB_POOL_MAX connections is the group's (below); with DB_POOL_MAX 2 the pool keeps 1.
  const sql = databaseFromConfig(config, 'wagate-worker', { maxConnections: config.DB_POOL_MAX - 1 });
  await refuseWrongDatabaseLogin(sql, config.DATABASE_URL).catch(async (error: unknown) => {
    await sql.end({ timeout: 1 });
    throw error;
  });
  const localeWarning = await cLocaleWarning(sql).catch(() => null);
  if (localeWarning) log.warn(localeWarning);
  const topology = topologyFromConfig(config);
  await checkShardCountAtStart(sql, config.QUEUE_PREFIX, config.WORK_SHARDS, log).catch(async (error: unknown) => {
    await closeDatabase(sql);
    throw error;
  });
  const sendReply = replyClientFromConfig(config, TWILIO_WEBHOOK_PATH);
  // Read and checked before consuming anything: a broken catalogue stops the worker at start.
  const replyTexts = { catalogues: loadReplyCatalogues(config.REPLY_TEXTS_DIR), defaultLanguage: config.REPLY_LANGUAGE };
  let consumer: ReturnType<typeof createWorkerConsumer> | null = null;
  let coordinator: ShardCoordinator | null = null;
  let reportFatal: (error: Error) => void = () => undefined;
  const fatal = new Promise<Error>((resolve) => (reportFatal = resolve));
  const memberId = newMemberId();
  const broker = createBroker({
    url: config.AMQP_URL,
    name: `wagate-worker consume ${memberId}`,
    log,
    onFatal: (error) => reportFatal(error),
    setup: async (channel, connection, lost) => {
      await declareShardTopology(sql, channel, topology, config.QUEUE_PREFIX, log);
      await consumer!.attach(connection, lost);
    },
  });
  // Hand-overs go on a connection of their own: the broker blocks a publishing connection
  // under a memory or disk alarm, and on the consuming one that would stall the deliveries
  // and acks of messages that need no publish at all.
  const publishBroker = createBroker({
    url: config.AMQP_URL,
    name: `wagate-worker publish ${memberId}`,
    log,
    // The consuming connection declares the topology before any delivery can need a hand-over.
    setup: async () => undefined,
  });
  const match = { threshold: config.MATCH_THRESHOLD, ambiguityMargin: config.MATCH_AMBIGUITY_MARGIN };
  const stallWatch = createStallWatch(stallLimitMs(config.DB_CONNECT_TIMEOUT_SECONDS, config.DB_STATEMENT_TIMEOUT_MS, config.DB_STALL_LIMIT_MS));
  // Claims, and decisions' writes, only on shards recorded as this worker's: see NOT_OURS and writeDecisions.
  const fence = { queuePrefix: config.QUEUE_PREFIX, memberId, shardCount: config.WORK_SHARDS, idleLimitMs: decisionIdleLimitMs(config) };
  const batchers = createStatementBatchers(sql, log, metrics, match, fence, stallWatch);
  // Nothing is claimed or sent once the shards could have passed to another worker, nor sent
  // once the call could outlast the stop's drain: see shardLease.
  let drainEndsAt: number | null = null;
  const lease = shardLease(() => coordinator?.lease() ?? { tenure: 0, leftMs: -Infinity }, {
    replyTimeoutMs: config.REPLY_TIMEOUT_MS,
    livenessTimeoutMs: config.WORKER_LIVENESS_TIMEOUT_MS,
    heartbeatMs: config.WORKER_HEARTBEAT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
  }, () => drainEndsAt);
  if (!lease.coversCalls && config.NODE_ENV === 'production') {
    log.warn({ replyTimeoutMs: config.REPLY_TIMEOUT_MS, livenessTimeoutMs: config.WORKER_LIVENESS_TIMEOUT_MS, heartbeatMs: config.WORKER_HEARTBEAT_MS },
      'REPLY_TIMEOUT_MS is more than WORKER_LIVENESS_TIMEOUT_MS less two WORKER_HEARTBEAT_MS: a worker cut off from Postgres during a provider call could still be in it when its shard passes to another worker; raise WORKER_LIVENESS_TIMEOUT_MS');
  }
  if (!lease.coversWrites && config.NODE_ENV === 'production') {
    log.warn({ statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS, livenessTimeoutMs: config.WORKER_LIVENESS_TIMEOUT_MS, heartbeatMs: config.WORKER_HEARTBEAT_MS },
      'DB_STATEMENT_TIMEOUT_MS is more than WORKER_LIVENESS_TIMEOUT_MS less two WORKER_HEARTBEAT_MS: a decision\'s write can outlast the lease, and a take of its shard by another worker then waits behind it (and retries the next round), so a dead worker\'s shards can pass on later; raise WORKER_LIVENESS_TIMEOUT_MS or lower DB_STATEMENT_TIMEOUT_MS');
  }
  const pipeline = {
    sql,
    sendReply,
    metrics,
    match,
    replyTexts,
    orderPolicy: { cancelWindowHours: config.ORDER_CANCEL_WINDOW_HOURS, stuckAfterMs: stuckAfterMs(config.RETRY_DELAYS_MS) },
    catalog: createCatalogCache(sql, batchers.match),
    claim: batchers.claim,
    drawOrderId: batchers.drawOrderId,
    writeDecision: batchers.writeDecision,
    markSending: batchers.markSending,
    settle: batchers.settle,
    lease,
    fence,
  };
  consumer = createWorkerConsumer({
    topology,
    publisher: createPublisher(publishBroker, config.PUBLISH_CONFIRM_TIMEOUT_MS),
    holdLimitMs: config.WORKER_DRAIN_TIMEOUT_MS,
    stopping: () => drainEndsAt !== null,
    sql,
    log,
    metrics,
    handle: (message, unsent, attempt) => processMessage(pipeline, message, unsent, attempt),
    // On the consuming connection: a memory alarm blocks the publishing one, where the
    // declaration would wait as long as the hand-over does.
    redeclare: (exchange) => broker.declareApart((channel) => declareHandOverTarget(channel, topology, exchange)),
    // Rare (an erase during a dead-lettering): a connection of its own, as `wagate erase` opens.
    dropDeadLetter: async (message) => {
      // Waited for briefly: the message's sender waits meanwhile, and the log says how to drop it later.
      return withDeadLetterLock(sql, config.QUEUE_PREFIX, () => withOperatorChannel({ url: config.AMQP_URL, topology, log }, (channel) =>
        dropDeadLetters(channel, topology, (letter) => letter.source === message.source && letter.messageId === message.messageId),
      ), WORKER_DEAD_LETTER_LOCK_WAIT_MS);
    },
  });
  // The heartbeat and the group's read on a connection of their own: behind the pool's
  // statements, all waiting on a slow or locked Postgres, they came late, the lease ran out
  // again and again, and each time the messages in hand went back to the queue, one delivery
  // nearer QUEUE_DELIVERY_LIMIT, until healthy messages were dead-lettered.
  const groupSql = databaseFromConfig(config, 'wagate-worker-group', { maxConnections: 1 });
  coordinator = createShardCoordinator({
    store: createMembershipStore({ sql, heartbeatSql: groupSql }, config.QUEUE_PREFIX, config.WORKER_LIVENESS_TIMEOUT_MS),
    consumer,
    memberId,
    shardCount: topology.shards.length,
    prefetchFor: (share) => shardPrefetch({ perShard: config.WORKER_PREFETCH, inHand: config.WORKER_MESSAGES_IN_HAND }, share),
    heartbeatMs: config.WORKER_HEARTBEAT_MS,
    livenessTimeoutMs: config.WORKER_LIVENESS_TIMEOUT_MS,
    log,
    metrics,
    stallWatch,
  });
  // Restarted, the worker closes its channels, and its shards pass to the others, instead of
  // being held unconsumed for as long as TCP keeps trying (some 15 minutes).
  const liveness = stallLiveness(stallWatch, log, 'its shards go to the other workers');
  // A (re)connected worker takes its share at once rather than at the next heartbeat.
  broker.onConnected(() => void coordinator!.tick());
  coordinator.start();
  const bothConnected = () => broker.isConnected() && publishBroker.isConnected();
  metrics.watchBroker({
    connected: bothConnected,
    loginRefused: () => broker.loginRefusedSince() !== null || publishBroker.loginRefusedSince() !== null,
    blocked: () => publishBroker.blockedSince() !== null,
  });
  const stuckAfter = stuckAfterMs(config.RETRY_DELAYS_MS);
  // A 0 after a failed count would restart WagateMessagesStuck's 15 minutes each time
  // PostgreSQL stumbled, and a missing unknown-replies series resolve WagateUnknownConfirmations.
  const refreshStuck = countKeptThroughFailures(() => countStuckMessages(sql, stuckAfter), (count) => metrics.messagesStuck.set(count),
    () => metrics.messagesStuck.set(Number.NaN), COUNT_KEPT_MS);
  const refreshUnknownReplies = countKeptThroughFailures(() => countUnknownReplies(sql),
    (counts) => Object.entries(counts).forEach(([provider, count]) => metrics.repliesUnknown.set({ provider }, count)),
    () => metrics.repliesUnknown.reset(), COUNT_KEPT_MS);
  const refreshHeld = countKeptThroughFailures(() => countHeldMessages(sql, config.PERSONAL_DATA_RETENTION_DAYS),
    (counts) => Object.entries(counts).forEach(([source, count]) => {
      metrics.messagesHeld.set({ source }, count.held);
      metrics.messagesHeldExpiring.set({ source }, count.expiring);
    }),
    () => {
      metrics.messagesHeld.reset();
      metrics.messagesHeldExpiring.reset();
    }, COUNT_KEPT_MS);
  const refreshOverdue = countKeptThroughFailures(() => personalDataOverdueSeconds(sql, config.PERSONAL_DATA_RETENTION_DAYS),
    (seconds) => metrics.personalDataOverdue.set(seconds), () => metrics.personalDataOverdue.set(Number.NaN), COUNT_KEPT_MS);
  void refreshHeld();
  void refreshOverdue();
  const heldGauges = setInterval(() => {
    void refreshHeld();
    void refreshOverdue();
  }, HELD_COUNT_INTERVAL_MS);
  const abandonedSweeps = failureStreak(log, {
    failing: 'cannot look for replies left sending with their message finished (check Postgres); tried again every 5 s, said again each minute',
    recovered: 'the look for replies left sending works again',
  });
  const sweepAbandonedSends = () => markAbandonedSends(sql, abandonedSendAfterMs(config.REPLY_TIMEOUT_MS)).then((unknown) => {
    abandonedSweeps.succeeded();
    if (unknown > 0) log.warn({ replies: unknown }, 'replies left sending with their message finished (an operator\'s resend killed?) are unknown: see wagate replies unknown');
  }, (error: Error) => abandonedSweeps.failed(error));
  // One refresh of the queue gauges at a time: a broker slow to answer would otherwise gather
  // rounds of questions behind each other, and the figures would only grow staler.
  let refreshingQueues: Promise<void> | null = null;
  const gauges = setInterval(() => {
    refreshingQueues ??= refreshQueueGauges(broker, topology, metrics).catch(() => undefined).finally(() => (refreshingQueues = null));
    // Counted after the sweep, so that a reply it marks unknown is in the same reading.
    void sweepAbandonedSends().finally(() => void refreshUnknownReplies());
    void refreshStuck();
    // Said in the log even where nothing probes /healthz.
    liveness();
  }, QUEUE_GAUGE_INTERVAL_MS);
  let draining = false;
  // The metrics port is reachable by any peer unless the chart's networkPolicy.metricsFrom says
  // otherwise: a client looping on /readyz asks Postgres once a second, not once a request.
  const postgresAnswers = createSharedPostgresCheck(sql);
  const readiness = () => workerReadiness({
    postgresAnswers,
    brokerConnected: bothConnected(),
    brokerLoginRefused: broker.loginRefusedSince() !== null || publishBroker.loginRefusedSince() !== null,
    brokerBlocked: publishBroker.blockedSince() !== null,
    draining,
  });
  metrics.watchReadiness(async () => (await readiness()).ready);
  const metricsServer = await startMetricsServer(
    metrics,
    config.METRICS_PORT,
    config.HOST,
    httpTimeouts(config),
    probeRoutes(readiness, () => {
      const { alive, body } = liveness();
      return { ready: alive, body };
    }),
  );
  log.info({ metricsPort: boundPort(metricsServer), shards: topology.shards.length, prefetch: config.WORKER_PREFETCH, messagesInHand: config.WORKER_MESSAGES_IN_HAND }, 'worker started');
  return {
    metricsPort: boundPort(metricsServer),
    sql,
    memberId,
    broker,
    publishBroker,
    metrics,
    topology,
    coordinator,
    fatal,
    async stop() {
      draining = true;
      drainEndsAt = Date.now() + config.WORKER_DRAIN_TIMEOUT_MS;
      clearInterval(gauges);
      clearInterval(heldGauges);
      await drainWithin(config.WORKER_DRAIN_TIMEOUT_MS, coordinator!, consumer!, log);
      const within = finishedWithin(STOP_AFTER_DRAIN_MS);
      // The consuming connection closes first: the consumer has closed each shard's channel once
      // its hand-overs were confirmed and its acks taken (or given up at the drain's end).
      const consumingClosed = await within(broker.close());
      const publishingClosed = await within(publishBroker.close());
      await closeServerNow(metricsServer);
      const closed = (error: Error) => log.warn({ err: error.message }, 'database pool closed with an error');
      const poolClosed = await within(Promise.all([closeDatabase(sql, closed), closeDatabase(groupSql, closed)]));
      if (!consumingClosed || !publishingClosed || !poolClosed) {
        log.warn({ consumingClosed, publishingClosed, poolClosed, waitedMs: STOP_AFTER_DRAIN_MS }, "stopping without waiting longer for the broker or the database to close; the pod's grace period would end first");
      }
      log.info('worker stopped');
    },
  };
}

/**
 * A decision's transaction idle this long has lost its worker: ended by Postgres before the
 * worker's heartbeat expires (two heartbeats of margin), so its shard lock does not outlive it.
 * At least 5 s, which no pause of a live worker between two statements comes near, even on a
 * starved CPU; with a liveness timeout that short the take waits that long for the lock.
 */
const MIN_DECISION_IDLE_LIMIT_MS = 5000;

function decisionIdleLimitMs(config: Config): number {
  return Math.max(MIN_DECISION_IDLE_LIMIT_MS, config.WORKER_LIVENESS_TIMEOUT_MS - 2 * config.WORKER_HEARTBEAT_MS);
}

interface WorkerReadinessInputs {
  postgresAnswers: PostgresCheck;
  brokerConnected: boolean;
  brokerLoginRefused: boolean;
  brokerBlocked: boolean;
  draining: boolean;
}

/** The worker cannot work without its broker connections, unlike ingest. */
async function workerReadiness({ postgresAnswers, ...broker }: WorkerReadinessInputs) {
  return judgeReadiness({ postgres: await postgresAnswers(), ...broker, brokerRequired: true });
}
