import { startFakeProvider, type FakeProvider } from '../src/dev/fake-provider';
import { importCatalog } from '../src/orders/catalog-import';
import { waitForOutboxDrain, waitForQueueCount, type Check } from './checks';
import { nextCountDelayMs } from './count-pace';
import { countSetAsideMessages, countWorkMessages, createBenchEnvironment, type BenchEnvironment } from './environment';
import { parseHistogram, summarize, type HistogramSummary } from './ingest-metrics';
import { postAll } from './load';
import { createMessageSource, type SignedMessage } from './messages';
import { lifetimePeakRssMib, measureCpu, type CpuShare } from './probes';
import { startIngestServer, startWorkerProcess, type ServerProcess, type WorkerProcess } from './servers';

/** A small menu: the order text below must match two of its products, each by an alias. */
export const CATALOG_CSV = `sku,name,price,currency,aliases
PIZ-MARG,Pizza Margherita,8.50,EUR,margherita
PIZ-PEPP,Pizza Pepperoni,9.50,EUR,pepperoni
PIZ-FUNG,Pizza Funghi,9.00,EUR,funghi|mushroom
COKE,Coca-Cola,2.50,EUR,coke|cola
WATER,Agua mineral,1.50,EUR,water|agua
`;
export const ORDER_TEXT = '2x margherita, one coke';
/** What ORDER_TEXT must become: two lines, three items, 2 × 8.50 + 2.50. */
const EXPECTED_ORDER = { lines: 2, items: 3, total: '19.50' };
/** Every MENU_EVERY-th message asks for the menu instead: a reply, but no order. */
const MENU_EVERY = 10;
const MENU_TEXT = 'menu';
/** Messages of one sender are processed one at a time; many senders let the prefetch fill up. */
export const WORKER_SENDERS = 2000;
export const ACCESS_TOKEN = 'bench-graph-token';
const PRELOAD_CONNECTIONS = 64;
const POLL_MS = 50;

export interface WorkerRunSpec {
  label: string;
  providerLatencyMs: number;
  prefetch: number;
  messagesInHand: number;
  messages: number;
}

export interface WorkerRun extends WorkerRunSpec {
  shards: number;
  senders: number;
  orderMessages: number;
  preload: { seconds: number; requestsPerSecond: number; outboxDrainMs: number | null };
  /** From spawn: until the worker logs 'worker started', and until the first message is processed. */
  startupMs: { workerStarted: number | null; firstProcessed: number | null };
  /** From when the worker began consuming until the last message processed on its first claim (see firstClaimDrain). */
  seconds: number;
  /** Over `seconds`, counting the messages (and their orders) processed on their first claim: all of them unless one was retried. */
  messagesPerSecond: number;
  ordersPerSecond: number;
  /** Little's law: messages the worker had in progress on average (rate × mean processing time). */
  meanInProgress: number;
  /** Kernel high-water mark (VmHWM) of the worker over its whole life. */
  peakRssMib: number;
  /** From 'worker started' until the bench saw every message processed or waiting in a retry tier. */
  cpuCores: CpuShare;
  /** Claims beyond one per message (sum of webhook_messages.attempts minus messages): retries and redeliveries. */
  extraClaims: number;
  /** From the worker's wagate_worker_messages_total: sent to a retry tier, or skipped as already finished. */
  retried: number;
  skipped: number;
  /** What the worker's database connections were doing while there was work left. */
  connections: ConnectionStates;
  /** From the worker's /metrics: per message (after waiting for its sender's previous one), and per provider call. */
  processingMs: HistogramSummary;
  providerMs: HistogramSummary;
  checks: Check[];
}

/** One resource to release on the way out, also on Ctrl-C; the caller owns the list. */
export type Track = (release: () => Promise<void>) => () => Promise<void>;

/**
 * Fills a fresh database and queue prefix with `messages` queued messages through the real
 * ingest, with no worker running; stops the ingest; then starts one worker process against
 * the fake Graph API and times it until every message is processed.
 */
export async function runWorkerScenario(spec: WorkerRunSpec, track: Track): Promise<WorkerRun> {
  const env = await createBenchEnvironment();
  const releaseEnv = track(() => env.destroy());
  const { messages, preload, preloadCheck } = await prepareBacklog(env, spec.messages, track);

  const fake = await startFakeProvider({ metaAccessToken: ACCESS_TOKEN });
  const releaseFake = track(() => fake.close());
  if (spec.providerLatencyMs > 0) fake.behave({ kind: 'delay', ms: spec.providerLatencyMs });
  const worker = await startWorkerProcess({
    databaseUrl: env.databaseUrl,
    amqpUrl: env.amqpUrl,
    queuePrefix: env.queuePrefix,
    graphApiUrl: fake.url,
    accessToken: ACCESS_TOKEN,
    prefetch: spec.prefetch,
    messagesInHand: spec.messagesInHand,
    workShards: env.workShards,
    memoryLimited: true,
  });
  const releaseWorker = track(() => worker.stop());
  const timing = await waitUntilProcessed(env, worker, spec.messages);
  const metricsText = await fetch(worker.metricsUrl).then((res) => res.text(), () => '');
  const peakRssMib = lifetimePeakRssMib(worker.pid);
  const workerStarted = await worker.started.then((at) => at - worker.spawnedAt, () => null);
  await releaseWorker();

  const orderIds = messages.filter((message) => message.text === ORDER_TEXT).map((message) => message.id);
  const checks = [preloadCheck, ...(await verifyWorkerRun(env, fake, messages, orderIds, timing.complete))];
  await releaseFake();

  const drain = await firstClaimDrain(env, worker);
  const [claims] = await env.sql<{ n: number }[]>`SELECT coalesce(sum(attempts), 0)::integer AS n FROM webhook_messages`;
  await releaseEnv();
  const processingMs = inMs(summarize(parseHistogram(metricsText, 'wagate_worker_processing_duration_seconds')));
  const messagesPerSecond = drain.messages / drain.seconds;
  return {
    ...spec,
    shards: env.topology.shards.length,
    senders: WORKER_SENDERS,
    orderMessages: orderIds.length,
    preload,
    startupMs: { workerStarted, firstProcessed: timing.firstProcessedMs },
    seconds: drain.seconds,
    messagesPerSecond,
    ordersPerSecond: drain.orders / drain.seconds,
    meanInProgress: (messagesPerSecond * processingMs.mean) / 1000,
    peakRssMib,
    cpuCores: timing.cpuCores,
    connections: timing.connections,
    extraClaims: claims!.n - spec.messages,
    retried: counterValue(metricsText, 'wagate_worker_messages_total', 'outcome="retried"'),
    skipped: counterValue(metricsText, 'wagate_worker_messages_total', 'outcome="skipped"'),
    processingMs,
    providerMs: inMs(summarize(parseHistogram(metricsText, 'wagate_provider_request_duration_seconds'))),
    checks: checks.map((check) => ({ ...check, name: `${spec.label}: ${check.name}` })),
  };
}

/** The catalog, and `count` messages from WORKER_SENDERS queued through a real ingest, with no worker running. */
/** `idTag` keeps the ids of two backlogs of one run apart (the scale-out's warm-up and its measured drain). */
export async function prepareBacklog(env: BenchEnvironment, count: number, track: Track, idTag = env.runId) {
  await importCatalog(env.sql, CATALOG_CSV);
  const source = createMessageSource(idTag, env.appSecret, {
    senders: WORKER_SENDERS,
    text: (n) => (n % MENU_EVERY === MENU_EVERY - 1 ? MENU_TEXT : ORDER_TEXT),
  });
  const messages = Array.from({ length: count }, () => source.next());
  return { messages, ...(await preloadQueues(env, messages, track)) };
}

async function preloadQueues(env: BenchEnvironment, messages: SignedMessage[], track: Track) {
  const ingest: ServerProcess = await startIngestServer(env);
  const releaseIngest = track(() => ingest.stop());
  const posted = await postAll(ingest.webhookUrl, messages, PRELOAD_CONNECTIONS);
  const outboxDrainMs = await waitForOutboxDrain(env.sql);
  const onQueues = await waitForQueueCount(env, messages.length);
  await releaseIngest();
  const ok = posted.ok === messages.length && outboxDrainMs !== null && onQueues === messages.length;
  return {
    preload: { seconds: posted.seconds, requestsPerSecond: posted.requestsPerSecond, outboxDrainMs },
    preloadCheck: {
      name: 'pre-load through the ingest',
      ok,
      detail: `${posted.ok} of ${messages.length} acked (${posted.non2xx} non-2xx, ${posted.errors} errors), ` +
        `outbox ${outboxDrainMs === null ? 'not drained' : 'drained'}, ${onQueues ?? 'missing'} on the work queues`,
    } satisfies Check,
  };
}

interface Timing {
  complete: boolean;
  firstProcessedMs: number | null;
  cpuCores: CpuShare;
  connections: ConnectionStates;
}

/**
 * What the worker's Postgres connections were doing, sampled from pg_stat_activity with every
 * poll: shares of all samples, by state and wait event (e.g. "active", "active IO:WALSync",
 * "idle", "idle in transaction"). With hundreds of messages waiting for one of its pooled
 * connections, a connection seen idle is waiting for the worker to send the next query.
 */
export interface ConnectionStates {
  samples: number;
  /** Mean number of worker connections seen per sample. */
  meanConnections: number;
  /** Running a query, not waiting on anything. */
  running: number;
  /** Running a query but waiting inside Postgres: I/O (WAL flush), locks. */
  waitingInPostgres: number;
  /** Idle or idle in transaction: waiting for the worker's next query. */
  waitingForWorker: number;
  byState: Record<string, number>;
}

/**
 * Polls the ledger until every message is processed. CPU is counted from when the worker
 * reports it started, so its start-up (loading, connecting, declaring) is left out.
 */
async function waitUntilProcessed(env: BenchEnvironment, worker: WorkerProcess, total: number): Promise<Timing> {
  await worker.started;
  const cpu = measureCpu(worker.pid, env.databaseName);
  let cpuCores: CpuShare | null = null;
  // Generous, so that a stall shows as a failed check rather than a hung bench: 20 s plus 20 ms a message.
  const deadline = performance.now() + 20_000 + total * 20;
  const states = new Map<string, number>();
  let samples = 0;
  let firstProcessedMs: number | null = null;
  let done = 0;
  let parked = 0;
  let countAt = 0;
  while (performance.now() < deadline) {
    // Connection states every round (pg_stat_activity is cheap); the count only when it is due.
    const counting = performance.now() >= countAt;
    const [counted, activity] = await Promise.all([
      counting
        ? env.sql<{ done: number; parked: number }[]>`
            SELECT count(*) FILTER (WHERE status IN ('processed', 'unmatched'))::integer AS done,
                   count(*) FILTER (WHERE status = 'queued' AND attempts > 0)::integer AS parked
            FROM webhook_messages`
        : null,
      env.sql<{ state: string }[]>`
        SELECT concat_ws(' ', state, wait_event_type || ':' || wait_event) AS state FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'wagate-worker'`,
    ]);
    if (counted) {
      ({ done, parked } = counted[0]!);
      if (done > 0 && firstProcessedMs === null) firstProcessedMs = performance.now() - worker.spawnedAt;
      const countingForMs = firstProcessedMs === null ? 0 : performance.now() - worker.spawnedAt - firstProcessedMs;
      countAt = performance.now() + nextCountDelayMs(done, total, countingForMs);
    }
    // Messages waiting out a retry tier's delay are not work: stop counting when only they are left.
    if (done + parked >= total && !cpuCores) cpuCores = cpu.stop();
    if (done >= total) break;
    if (done > 0 && !cpuCores) {
      samples += 1;
      for (const { state } of activity) states.set(state, (states.get(state) ?? 0) + 1);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return { complete: done >= total, firstProcessedMs, cpuCores: cpuCores ?? cpu.stop(), connections: summarizeStates(states, samples) };
}

function summarizeStates(states: Map<string, number>, samples: number): ConnectionStates {
  const seen = [...states.values()].reduce((sum, count) => sum + count, 0);
  const share = (pick: (state: string) => boolean) =>
    [...states].filter(([state]) => pick(state)).reduce((sum, [, count]) => sum + count, 0) / Math.max(1, seen);
  return {
    samples,
    meanConnections: seen / Math.max(1, samples),
    running: share((state) => state === 'active'),
    waitingInPostgres: share((state) => state.startsWith('active ')),
    waitingForWorker: share((state) => state.startsWith('idle')),
    byState: Object.fromEntries([...states].sort((a, b) => b[1] - a[1]).map(([state, count]) => [state, count / Math.max(1, seen)])),
  };
}

/**
 * Messages processed on their first claim, and the seconds from when the worker began
 * consuming to the last of those. A retried message waits out its tier's delay (5 s by
 * default) and would stretch the window with idle time, so it is left out of both.
 *
 * The start is the earlier of the worker's 'worker started' and 'broker connected' lines
 * (consumers attach just before the latter), by the worker's own clock; the end is
 * Postgres's processed_at. Both read the same wall clock when they run on one machine, as
 * the bench assumes.
 */
async function firstClaimDrain(env: BenchEnvironment, worker: WorkerProcess): Promise<{ messages: number; orders: number; seconds: number }> {
  const startedMs = Math.min(worker.loggedAt.get('worker started') ?? Infinity, worker.loggedAt.get('broker connected') ?? Infinity);
  const [row] = await env.sql<{ messages: number; orders: number; last: number | null }[]>`
    SELECT count(*)::integer AS messages,
           count(o.id)::integer AS orders,
           (extract(epoch FROM max(m.processed_at)) * 1000)::float8 AS last
    FROM webhook_messages m
    LEFT JOIN orders o ON o.webhook_source = m.webhook_source AND o.message_id = m.message_id
    WHERE m.status IN ('processed', 'unmatched') AND m.attempts = 1`;
  const seconds = row!.last === null || !Number.isFinite(startedMs) ? NaN : (row!.last - startedMs) / 1000;
  return { messages: row!.messages, orders: row!.orders, seconds };
}

/**
 * What the figures rest on: every message processed, one order for each that asked for
 * one (with the right lines) and none for the others, one reply each, and exactly one call to
 * the provider per reply, matched by the provider's message id.
 */
export async function verifyWorkerRun(env: BenchEnvironment, fake: FakeProvider, messages: SignedMessage[], orderIds: string[], complete: boolean): Promise<Check[]> {
  const { sql } = env;
  const total = messages.length;
  // The run's own messages: a scale-out run keeps the replies and orders of its warm-up.
  const ids = messages.map((message) => message.id);
  const [ledger] = await sql<{ processed: number; other: number; attempts: number }[]>`
    SELECT count(*) FILTER (WHERE status = 'processed')::integer AS processed,
           count(*) FILTER (WHERE status <> 'processed')::integer AS other,
           coalesce(sum(attempts), 0)::integer AS attempts
    FROM webhook_messages`;
  const [orders] = await sql<{ total: number; distinct: number; asked: number; expected: number }[]>`
    WITH shape AS (
      SELECT o.message_id, o.total::text AS total, count(i.*)::integer AS lines, coalesce(sum(i.quantity), 0)::integer AS items
      FROM orders o LEFT JOIN order_items i ON i.order_id = o.id WHERE o.message_id = ANY(${ids}::text[]) GROUP BY o.id)
    SELECT count(*)::integer AS total,
           count(DISTINCT message_id)::integer AS distinct,
           count(*) FILTER (WHERE message_id = ANY(${orderIds}::text[]))::integer AS asked,
           count(*) FILTER (WHERE lines = ${EXPECTED_ORDER.lines} AND items = ${EXPECTED_ORDER.items} AND total = ${EXPECTED_ORDER.total})::integer AS expected
    FROM shape`;
  const calls = fake.calls();
  const callIds = calls.map((call) => call.providerMessageId ?? '');
  const [replies] = await sql<{ total: number; sent: number; confirmations: number; menus: number; matched: number }[]>`
    SELECT count(*)::integer AS total,
           count(*) FILTER (WHERE status = 'sent')::integer AS sent,
           count(*) FILTER (WHERE kind = 'order_confirmation')::integer AS confirmations,
           count(*) FILTER (WHERE kind = 'menu')::integer AS menus,
           count(DISTINCT provider_message_id) FILTER (WHERE provider_message_id = ANY(${callIds}::text[]))::integer AS matched
    FROM outbound_messages WHERE inbound_message_id = ANY(${ids}::text[])`;
  const answered = calls.filter((call) => call.status === 200).length;
  const perRecipient = sameCounts(
    messages.map((message) => message.from),
    calls.map((call) => String((call.body as { to?: unknown } | null)?.to ?? '')),
  );
  const leftOnWork = await countWorkMessages(env.amqpUrl, env.topology);
  const setAside = await countSetAsideMessages(env.amqpUrl, env.topology);
  const l = ledger!;
  const o = orders!;
  const r = replies!;
  return [
    {
      name: 'every message processed',
      ok: complete && l.processed === total && l.other === 0,
      detail: `${l.processed} of ${total} processed, ${l.other} in another state, ${l.attempts} claims (more than one each means a retry or redelivery)`,
    },
    {
      name: 'one order per message that asked for one, none for the others',
      ok: o.total === orderIds.length && o.distinct === o.total && o.asked === o.total && o.expected === o.total,
      detail: `${orderIds.length} asked, ${o.total} orders (${o.distinct} distinct messages, ${o.asked} for a message that asked, ` +
        `${o.expected} with the expected lines and total)`,
    },
    {
      name: 'one reply per message, sent',
      ok: r.total === total && r.sent === total && r.confirmations === orderIds.length && r.menus === total - orderIds.length,
      detail: `${r.total} replies, ${r.sent} sent, ${r.confirmations} order confirmations, ${r.menus} menus`,
    },
    {
      name: 'exactly one provider call per message',
      ok: calls.length === total && answered === total && new Set(callIds).size === total && r.matched === total && perRecipient,
      detail: `${calls.length} calls, ${answered} answered 200, ${r.matched} replies carry a distinct call's message id, ` +
        `calls per recipient ${perRecipient ? 'match' : 'do not match'} messages per sender`,
    },
    {
      name: 'no retries or dead letters left',
      ok: leftOnWork === 0 && setAside === 0,
      detail: `${leftOnWork ?? 'missing'} on the work queues, ${setAside ?? 'missing'} in the retry tiers and dead-letter queue`,
    },
  ];
}

/** One series of a Prometheus counter, by a label matcher written as it appears ('outcome="retried"'); 0 if absent. */
function counterValue(text: string, name: string, label: string): number {
  const line = text.split('\n').find((each) => each.startsWith(`${name}{`) && each.includes(label));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

function sameCounts(expected: string[], actual: string[]): boolean {
  const counts = new Map<string, number>();
  for (const key of expected) counts.set(key, (counts.get(key) ?? 0) + 1);
  for (const key of actual) counts.set(key, (counts.get(key) ?? 0) - 1);
  return [...counts.values()].every((count) => count === 0);
}

function inMs(summary: HistogramSummary): HistogramSummary {
  return { count: summary.count, mean: summary.mean * 1000, p50: summary.p50 * 1000, p99: summary.p99 * 1000 };
}
