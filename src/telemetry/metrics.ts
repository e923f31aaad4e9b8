import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Fine around the 15 ms goal at 500 req/s and the 20 ms SLO, so a p99 near them is read within
 * 5 or 10 ms rather than guessed across 10–20–50; an edge at 300 ms, the load tests' target (and
 * the dashboard's warning), so the share of acks within it is counted, not guessed across
 * 250–500; coarse up to the 1.5 s alert and the 2 s promise.
 */
const SHORT_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.3, 0.5, 1, 1.5, 2, 5];
/**
 * On past the commit deadline (DB_STATEMENT_TIMEOUT_MS + 2 s, 7 s by default), where each
 * request of a Postgres stall is answered 503: ending at 5 s, the ack's and the commit's p99
 * both sat flat at 5 s through a stall, and the runbook's comparison of the two read 5 against 5.
 */
const ACK_BUCKETS_SECONDS = [...SHORT_BUCKETS_SECONDS, 7.5, 10, 15, 30];
/** On to past PUBLISH_CONFIRM_TIMEOUT_MS's 10 s: a broker that confirms in 8 s must not read as 5. */
const PUBLISH_BUCKETS_SECONDS = [...SHORT_BUCKETS_SECONDS, 10, 15, 30];
/**
 * On past REPLY_TIMEOUT_MS's default 10 s: a provider call that times out is observed at its
 * deadline, and with a raised timeout every such call read as 10 s, so a slow provider looked
 * like one within the default, and the runbook's "raise it above the provider's p99" had nothing
 * to read.
 */
const PROVIDER_CALL_TAIL_SECONDS = [15, 30, 60];

export type Metrics = ReturnType<typeof createMetrics>;

/** What the broker gauges read at scrape time. */
export interface BrokerProbes {
  connected(): boolean;
  loginRefused(): boolean;
  blocked(): boolean;
}

const SOURCES = ['whatsapp', 'twilio'];
const WEBHOOK_OUTCOMES = ['queued', 'duplicate', 'rate_limited', 'replay_rejected', 'processed', 'malformed', 'status', 'status_duplicate',
  'status_replay_rejected', 'ignored', 'provider_error', 'invalid_signature', 'too_large', 'bad_request', 'unavailable', 'overloaded', 'aborted'];
/** Why a signature was refused (webhooks/signature-rejection.ts; telemetry may not import that layer). */
const SIGNATURE_REASONS = ['missing_header', 'bad_format', 'no_secret_configured', 'no_match', 'too_many_params'];
const WORKER_OUTCOMES = ['processed', 'unmatched', 'retried', 'dead_lettered', 'skipped', 'given_back'];
const REPLY_RESULTS = ['sent', 'retry', 'failed', 'unknown'];
/** What a late commit recorded (ledger/items.ts's outcomes; a receipt outside the replay window records nothing). */
const LATE_COMMIT_OUTCOMES = ['queued', 'rate_limited', 'replay_rejected', 'processed', 'malformed', 'duplicate', 'status', 'status_duplicate'];
/** How an ACK_AFTER=publish wait ended (ledger/ack-after-publish.ts). */
const PUBLISH_WAIT_RESULTS = ['confirmed', 'unconfirmed', 'timed_out'];
/** What a provider's receipt said of a reply, as wagate_reply_receipts_total labels it. */
export const REPLY_RECEIPT_STATUSES = ['sent', 'delivered', 'read', 'failed', 'other'] as const;

/** Twilio's "undelivered" is a failure as final as "failed" (wagate_receipt_rank ranks them alike). */
export function replyReceiptStatus(receipt: string): (typeof REPLY_RECEIPT_STATUSES)[number] {
  if (receipt === 'undelivered') return 'failed';
  return (REPLY_RECEIPT_STATUSES as readonly string[]).includes(receipt) ? (receipt as (typeof REPLY_RECEIPT_STATUSES)[number]) : 'other';
}

/**
 * One registry per process; passed to whatever records, never a module-level singleton.
 * `processMetrics: false` leaves out the process, heap, GC and event-loop collectors, which
 * watch the process for as long as it lives: for a registry nobody scrapes.
 */
export function createMetrics(role: string, { processMetrics = true } = {}) {
  const registry = new Registry();
  // Read at scrape time, so the gauge can never lag behind a lost connection.
  let brokerProbe: () => boolean = () => false;
  let loginRefusedProbe: () => boolean = () => false;
  let blockedProbe: () => boolean = () => false;
  let readinessProbe: (() => Promise<boolean>) | null = null;
  registry.setDefaultLabels({ role });
  if (processMetrics) collectDefaultMetrics({ register: registry, prefix: 'wagate_' });
  const metrics = {
    registry,
    webhookEvents: new Counter({
      name: 'wagate_webhook_events_total',
      help: 'Webhook outcomes, one per message, receipt or refused request; refused signatures also by reason.',
      labelNames: ['source', 'outcome', 'reason'] as const,
      registers: [registry],
    }),
    ackDuration: new Histogram({
      name: 'wagate_webhook_ack_duration_seconds',
      help: 'Time from request arrival to the response, by source; verified="true" for requests whose signature matched (the SLO\'s), "false" for those refused before or at the signature check.',
      labelNames: ['source', 'verified'] as const,
      buckets: ACK_BUCKETS_SECONDS,
      registers: [registry],
    }),
    ledgerBatchSize: new Histogram({
      name: 'wagate_ledger_batch_items',
      help: 'Items committed per ledger batch (group commit).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers: [registry],
    }),
    ledgerCommitDuration: new Histogram({
      name: 'wagate_ledger_commit_duration_seconds',
      help: 'Time to commit one ledger batch to PostgreSQL.',
      buckets: ACK_BUCKETS_SECONDS,
      registers: [registry],
    }),
    ledgerLateCommits: new Counter({
      name: 'wagate_ledger_late_commits_total',
      help: 'Items of requests answered 503 at their deadline whose batch then committed, by what was recorded; the provider\'s retry of each counts as a duplicate.',
      labelNames: ['source', 'outcome'] as const,
      registers: [registry],
    }),
    publishDuration: new Histogram({
      name: 'wagate_publish_duration_seconds',
      help: 'Time from publish to broker confirm for one batch of outbox messages.',
      buckets: PUBLISH_BUCKETS_SECONDS,
      registers: [registry],
    }),
    published: new Counter({
      name: 'wagate_outbox_published_total',
      help: 'Outbox messages confirmed by the broker, by path (owner right after commit, or relay sweep).',
      labelNames: ['path'] as const,
      registers: [registry],
    }),
    ackAfterPublish: new Counter({
      name: 'wagate_ack_after_publish_total',
      help: 'With ACK_AFTER=publish: requests answered after the broker confirmed their messages, or without it (unconfirmed or timed out; the outbox still holds them).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    publishFailures: new Counter({
      name: 'wagate_publish_failures_total',
      help: 'Publishes not confirmed (broker away, nack, returned or timed out): outbox rows stay in the outbox (ingest), hand-overs stay held (worker).',
      registers: [registry],
    }),
    messagesTooLarge: new Counter({
      name: 'wagate_messages_too_large_total',
      help: 'Recorded messages larger than BROKER_MAX_MESSAGE_BYTES once serialised for the queue: recorded dead instead of published, since the broker would refuse them every time.',
      registers: [registry],
    }),
    outboxPending: new Gauge({
      name: 'wagate_outbox_pending_messages',
      help: 'Rows waiting in the outbox. Read from PostgreSQL, so every pod reports the same value: use max().',
      registers: [registry],
    }),
    outboxOldestSeconds: new Gauge({
      name: 'wagate_outbox_oldest_age_seconds',
      help: 'Age of the oldest outbox row. Read from PostgreSQL: use max().',
      registers: [registry],
    }),
    brokerConnected: new Gauge({
      name: 'wagate_broker_connected',
      help: '1 while this process holds a broker channel.',
      registers: [registry],
      collect() {
        this.set(brokerProbe() ? 1 : 0);
      },
    }),
    ready: new Gauge({
      name: 'wagate_ready',
      help: '1 while this process would answer /readyz with 200, checked at scrape time (PostgreSQL answering; for the worker, the broker connected too).',
      registers: [registry],
      async collect() {
        if (readinessProbe) this.set((await readinessProbe().catch(() => false)) ? 1 : 0);
      },
    }),
    watchReadiness(probe: () => Promise<boolean>): void {
      readinessProbe = probe;
    },
    brokerBlocked: new Gauge({
      name: 'wagate_broker_blocked',
      help: '1 while the broker blocks this process\'s publishing (connection.blocked: a RabbitMQ memory or disk alarm).',
      registers: [registry],
      collect() {
        this.set(blockedProbe() ? 1 : 0);
      },
    }),
    brokerLoginRefused: new Gauge({
      name: 'wagate_broker_login_refused',
      help: '1 while the broker refuses this process\'s login (wrong AMQP_URL user or password).',
      registers: [registry],
      collect() {
        this.set(loginRefusedProbe() ? 1 : 0);
      },
    }),
    webhookRequests: new Counter({
      name: 'wagate_webhook_requests_total',
      help: 'Webhook HTTP requests by source and response status code, refused ones included.',
      labelNames: ['source', 'code'] as const,
      registers: [registry],
    }),
    watchBroker(probes: BrokerProbes): void {
      brokerProbe = probes.connected;
      loginRefusedProbe = probes.loginRefused;
      blockedProbe = probes.blocked;
    },
    workerMessages: new Counter({
      name: 'wagate_worker_messages_total',
      help: 'Queue messages handled by the worker, by outcome (processed, unmatched, retried, dead_lettered, skipped, given_back).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    workerRedeliveries: new Counter({
      name: 'wagate_worker_redeliveries_total',
      help: 'Deliveries the broker marked redelivered: given back by a consumer that stopped, crashed or lost its channel before acking.',
      registers: [registry],
    }),
    workerMessagesInHand: new Gauge({
      name: 'wagate_worker_messages_in_hand',
      help: 'Deliveries this worker has received and not yet acked or given back: being processed, or waiting behind their sender\'s earlier messages. Not in the queue\'s ready count: sum() across workers.',
      registers: [registry],
    }),
    workerDuration: new Histogram({
      name: 'wagate_worker_processing_duration_seconds',
      help: 'Time to process one queue message, provider call included.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, ...PROVIDER_CALL_TAIL_SECONDS],
      registers: [registry],
    }),
    workerBatchSize: new Histogram({
      name: 'wagate_worker_batch_items',
      help: 'Messages per shared worker statement (micro-batch), by statement (claim, match, record, mark_sending, settle).',
      labelNames: ['statement'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers: [registry],
    }),
    ordersCreated: new Counter({
      name: 'wagate_orders_created_total',
      help: 'Orders created, by source.',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    confirmations: new Counter({
      name: 'wagate_confirmations_total',
      help: 'Reply sends by provider and result (sent, retry, failed, unknown).',
      labelNames: ['provider', 'result'] as const,
      registers: [registry],
    }),
    replyReceipts: new Counter({
      name: 'wagate_reply_receipts_total',
      help: 'New receipts for wagate\'s own replies, by source and what they say (sent, delivered, read, failed, other; Twilio\'s undelivered counts as failed). A failed one means a reply the provider had accepted never reached the customer.',
      labelNames: ['source', 'status'] as const,
      registers: [registry],
    }),
    providerDuration: new Histogram({
      name: 'wagate_provider_request_duration_seconds',
      help: 'Graph API or Twilio REST call duration.',
      labelNames: ['provider'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, ...PROVIDER_CALL_TAIL_SECONDS],
      registers: [registry],
    }),
    queueReady: new Gauge({
      name: 'wagate_queue_ready_messages',
      help: 'Ready messages read from the broker (queue="work": all shards; queue="dead": the DLQ). Every worker reports the same value: use max().',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    shardReady: new Gauge({
      name: 'wagate_queue_shard_ready_messages',
      help: 'Ready messages on each work shard, read from the broker. Every worker reports the same value: use max by (shard).',
      labelNames: ['shard'] as const,
      registers: [registry],
    }),
    queueConsumers: new Gauge({
      name: 'wagate_queue_consumers',
      help: 'Consumers on the work shards, read from the broker. Every worker reports the same value: use max().',
      registers: [registry],
    }),
    shardConsumers: new Gauge({
      name: 'wagate_queue_shard_consumers',
      help: 'Consumers on each work shard, read from the broker. Every worker reports the same value: use max by (shard).',
      labelNames: ['shard'] as const,
      registers: [registry],
    }),
    shardsOwned: new Gauge({
      name: 'wagate_worker_shards_owned',
      help: 'Work shards this worker holds (its consumer is the only one on each).',
      registers: [registry],
    }),
    rebalances: new Counter({
      name: 'wagate_worker_rebalances_total',
      help: 'Shard hand-overs this worker took part in, by direction (acquired, released).',
      labelNames: ['direction'] as const,
      registers: [registry],
    }),
    groupMembers: new Gauge({
      name: 'wagate_worker_group_members',
      help: 'Live workers in the group (heartbeat recent), read from PostgreSQL. Every worker reports the same value: use max().',
      registers: [registry],
    }),
    groupPaused: new Gauge({
      name: 'wagate_worker_group_paused',
      help: '1 while a wagate reshard pauses the worker group (no shard is consumed), read from PostgreSQL. Every worker reports the same value: use max().',
      registers: [registry],
    }),
    messagesStuck: new Gauge({
      name: 'wagate_messages_stuck',
      help: 'Messages still queued or processing, untouched for longer than the retry policy allows and not in the outbox: their queue copy was lost. Read from PostgreSQL; use max().',
      registers: [registry],
    }),
    repliesUnknown: new Gauge({
      name: 'wagate_replies_unknown',
      help: 'Replies whose outcome is unknown and that no operator has resent or settled yet, read from PostgreSQL. Every worker reports the same value: use max().',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
    messagesHeld: new Gauge({
      name: 'wagate_messages_held',
      help: 'Messages held over the rate limit whose content is still kept, so that wagate release can re-queue them, read from PostgreSQL. Every worker reports the same value: use max().',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    messagesHeldExpiring: new Gauge({
      name: 'wagate_messages_held_expiring',
      help: 'Held messages whose content cleanup may clear within a day (PERSONAL_DATA_RETENTION_DAYS), after which no release can re-queue them. Read from PostgreSQL; use max().',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    personalDataOverdue: new Gauge({
      name: 'wagate_personal_data_overdue_seconds',
      help: 'How long the oldest reply text or customer name that cleanup should have cleared has been past PERSONAL_DATA_RETENTION_DAYS: about the time since cleanup last cleared, under a day while it runs nightly (0 with nothing due). Read from PostgreSQL; every worker reports the same value: use max().',
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'wagate_http_in_flight_requests',
      help: 'Webhook requests being handled by this process.',
      registers: [registry],
    }),
  };
  // Known label sets start at 0, so rate() and increase() see the first event of each.
  for (const source of SOURCES) {
    for (const outcome of WEBHOOK_OUTCOMES) if (outcome !== 'invalid_signature') metrics.webhookEvents.inc({ source, outcome }, 0);
    for (const reason of SIGNATURE_REASONS) metrics.webhookEvents.inc({ source, outcome: 'invalid_signature', reason }, 0);
    metrics.ordersCreated.inc({ source }, 0);
    for (const status of REPLY_RECEIPT_STATUSES) metrics.replyReceipts.inc({ source, status }, 0);
    for (const result of REPLY_RESULTS) metrics.confirmations.inc({ provider: source, result }, 0);
    for (const verified of ['true', 'false']) metrics.ackDuration.zero({ source, verified });
    metrics.providerDuration.zero({ provider: source });
    metrics.repliesUnknown.set({ provider: source }, 0);
    // Rare by design, so the first of each must show in rate() too.
    for (const outcome of LATE_COMMIT_OUTCOMES) metrics.ledgerLateCommits.inc({ source, outcome }, 0);
  }
  for (const result of PUBLISH_WAIT_RESULTS) metrics.ackAfterPublish.inc({ result }, 0);
  for (const outcome of WORKER_OUTCOMES) metrics.workerMessages.inc({ outcome }, 0);
  for (const direction of ['acquired', 'released']) metrics.rebalances.inc({ direction }, 0);
  return metrics;
}

