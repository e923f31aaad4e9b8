/**
 * The k6 side of a scenario: k6's options, setup, iteration, teardown and handleSummary,
 * built from the same definition the Node runner runs. Only this folder and the entry
 * scripts import k6 modules.
 */
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import http, { type ObjectBatchRequest, type RefinedResponse, type ResponseType } from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import type { Options, Scenario } from 'k6/options';
import { DRAIN_POLL_SECONDS, STATS_KEPT_BUSY, createDrainClock, retryAfterSeconds, statsBusy, statsHeaders, unfinishedMessages } from '../lib/backlog.ts';
import { newRunId } from '../lib/ids.ts';
import type { PlannedRequest } from '../lib/payloads.ts';
import type { ArrivalLoad, Drain, ScenarioModule } from '../lib/scenario.ts';
import { readSettings } from '../lib/settings.ts';
import { buildSummary, formatSummary } from '../lib/summary.ts';
import { TREND_STATS, type MetricSummary } from '../lib/thresholds.ts';

/** The same 10 s the Node runner gives a request (k6's default of 60 s is far past any ack worth having). */
const REQUEST_TIMEOUT_SECONDS = 10;
const REQUEST_TIMEOUT = `${REQUEST_TIMEOUT_SECONDS}s`;
/** Time teardown may take beyond the drain wait itself, for its requests. */
const TEARDOWN_MARGIN_SECONDS = 30;

interface RunData {
  runId: string;
}

/** The part of handleSummary()'s argument the summary reads; setup_data is what setup() returned. */
interface K6SummaryData {
  setup_data?: Partial<RunData>;
  /** Missing when K6_NEW_MACHINE_READABLE_SUMMARY is set: k6 then passes another shape. */
  metrics?: Record<string, { type: string; values: Record<string, number>; thresholds?: Record<string, { ok: boolean }> }>;
}

export function executorOptions(load: ArrivalLoad): Scenario {
  if (load.executor === 'constant-arrival-rate') {
    return {
      executor: 'constant-arrival-rate',
      rate: load.rate,
      timeUnit: '1s',
      duration: `${load.durationSeconds}s`,
      preAllocatedVUs: load.preAllocatedVUs,
      maxVUs: load.maxVUs,
    };
  }
  return {
    executor: 'ramping-arrival-rate',
    startRate: load.startRate,
    timeUnit: '1s',
    stages: load.stages.map((stage) => ({ target: stage.target, duration: `${stage.durationSeconds}s` })),
    preAllocatedVUs: load.preAllocatedVUs,
    maxVUs: load.maxVUs,
  };
}

export function createK6Script(scenario: ScenarioModule) {
  const settings = readSettings(__ENV, scenario.name, scenario.defaults);
  const definition = scenario.define(settings);
  // Custom metrics must exist in the init context.
  const counters = new Map(definition.counters.map((counter) => [counter.name, new Counter(counter.name)]));
  const drainSeconds = definition.drain ? new Trend('backlog_drain_seconds') : null;
  const callbacks = new Map<number, ReturnType<typeof http.expectedStatuses>>();
  const expecting = (status: number) => {
    if (!callbacks.has(status)) callbacks.set(status, http.expectedStatuses(status));
    return callbacks.get(status)!;
  };

  const options: Options = {
    scenarios: { [definition.name]: executorOptions(definition.load) },
    thresholds: definition.thresholds,
    summaryTrendStats: TREND_STATS,
    // k6 sends at most 6 of a batch at a time by default: a duplicate storm's copies must race together, as in the Node runner.
    batch: Math.max(definition.requestsPerIteration ?? 1, 6),
    batchPerHost: Math.max(definition.requestsPerIteration ?? 1, 6),
    teardownTimeout: `${(definition.drain?.timeoutSeconds ?? 0) + TEARDOWN_MARGIN_SECONDS}s`,
  };

  const toBatch = (request: PlannedRequest): ObjectBatchRequest => ({
    method: 'POST',
    url: settings.baseUrl + request.path,
    body: request.body,
    params: { headers: request.headers, tags: request.tags, timeout: REQUEST_TIMEOUT, responseCallback: expecting(request.expectedStatus) },
  });

  const record = (request: PlannedRequest, response: RefinedResponse<ResponseType | undefined>) => {
    const expected = request.expectedStatus;
    check(response, { [`${request.tags.kind} answered ${expected}`]: (r) => r.status === expected }, request.tags);
    for (const counter of definition.counters) {
      if (counter.perAnswer) counters.get(counter.name)!.add(counter.perAnswer(request, response.status) ? 1 : 0);
    }
  };

  return {
    options,
    setup(): RunData {
      // A wrong ADMIN_TOKEN found now, not after the whole load.
      if (definition.drain) readStats(settings.baseUrl + definition.drain.statsPath, settings.adminToken ?? '', Date.now() + REQUEST_TIMEOUT_SECONDS * 1000);
      const runId = settings.runId ?? newRunId();
      console.log(`run ${runId}: message ids contain it (wamid.load.${definition.name}.${runId}.…, SM${runId}…)`);
      return { runId };
    },
    async iterate(data: RunData): Promise<void> {
      const iteration = exec.scenario.iterationInTest;
      for (const counter of definition.counters) {
        if (counter.perIteration) counters.get(counter.name)!.add(counter.perIteration(iteration));
      }
      const requests = await definition.plan(iteration, { runId: data.runId, settings });
      // A batch goes out on parallel connections: the copies of a duplicate storm arrive together.
      const responses = http.batch(requests.map(toBatch));
      requests.forEach((request, i) => record(request, responses[i]!));
    },
    teardown(): void {
      if (!definition.drain) return;
      waitForDrain(definition.drain, settings.baseUrl, settings.adminToken ?? '', counters, drainSeconds!);
    },
    handleSummary(data: K6SummaryData): Record<string, string> {
      if (!data.metrics) {
        throw new Error('the end-of-test summary has no metrics: unset K6_NEW_MACHINE_READABLE_SUMMARY, whose summary shape these scripts do not read');
      }
      const summary = buildSummary({
        scenario: definition.name,
        description: definition.description,
        runId: data.setup_data?.runId ?? settings.runId ?? 'unknown',
        runner: 'k6',
        baseUrl: settings.baseUrl,
        load: definition.load,
        thresholds: definition.thresholds,
        counterNames: definition.counters.map((counter) => counter.name),
        metrics: data.metrics as Record<string, MetricSummary>,
      });
      return { stdout: formatSummary(summary), [settings.summaryPath]: JSON.stringify(summary, null, 2) };
    },
  };
}

/** The unfinished messages the stats endpoint reports, waiting out its rate limit or another caller until giveUpAt. */
function readStats(url: string, adminToken: string, giveUpAt: number): number {
  let response = http.get(url, { headers: statsHeaders(adminToken), timeout: REQUEST_TIMEOUT, tags: { kind: 'stats' } });
  while (statsBusy(response.status)) {
    const waitSeconds = retryAfterSeconds(response.headers['Retry-After']);
    if (Date.now() + waitSeconds * 1000 > giveUpAt) throw new Error(STATS_KEPT_BUSY);
    sleep(waitSeconds);
    response = http.get(url, { headers: statsHeaders(adminToken), timeout: REQUEST_TIMEOUT, tags: { kind: 'stats' } });
  }
  const unfinished = response.status === 200 ? unfinishedMessages(response.json()) : null;
  if (unfinished === null) throw new Error(`the stats endpoint answered ${response.status}: is ADMIN_TOKEN the gateway's?`);
  return unfinished;
}

function waitForDrain(drain: Drain, baseUrl: string, adminToken: string, counters: Map<string, Counter>, drainSeconds: Trend): void {
  const { timeoutSeconds } = drain;
  const url = baseUrl + drain.statsPath;
  const giveUpAt = Date.now() + timeoutSeconds * 1000;
  let built: number | null = null;
  try {
    built = readStats(url, adminToken, giveUpAt);
    counters.get('backlog_messages')!.add(built);
    console.log(`backlog built: ${built} messages queued or processing; start a worker now (waiting up to ${timeoutSeconds} s for the drain)`);
    const startMs = Date.now();
    const clock = createDrainClock(built, startMs);
    let left = built;
    while (left > 0 && Date.now() - startMs < timeoutSeconds * 1000) {
      sleep(DRAIN_POLL_SECONDS);
      left = readStats(url, adminToken, giveUpAt);
      clock.observe(left, Date.now());
    }
    counters.get('backlog_left')!.add(left);
    if (left === 0) drainSeconds.add(clock.secondsUntil(Date.now()));
  } catch (error) {
    // A drain that could not be watched fails its thresholds: a counter without a sample
    // would pass count==0, and the summary would call the run a pass.
    if (built === null) counters.get('backlog_messages')!.add(0);
    counters.get('backlog_left')!.add(Math.max(built ?? 0, 1));
    throw error;
  }
}
