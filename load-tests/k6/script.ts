/**
 * The k6 side of a scenario: k6's options, setup, iteration, teardown and handleSummary,
 * built from the same definition the Node runner runs. Only this folder and the entry
 * scripts import k6 modules.
 */
import { check } from 'k6';
import exec from 'k6/execution';
import http, { type ObjectBatchRequest, type RefinedResponse, type ResponseType } from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import type { Options, Scenario } from 'k6/options';
import { newRunId, runIdLine } from '../lib/ids.ts';
import { checkName, webhookTags, type PlannedRequest } from '../lib/payloads.ts';
import { ITERATION_ERRORS, refuseEmptyLoad, type ArrivalLoad, type ScenarioModule } from '../lib/scenario.ts';
import { readSettings } from '../lib/settings.ts';
import { buildSummary, formatSummary, type CheckTally } from '../lib/summary.ts';
import { TREND_STATS, type MetricSummary } from '../lib/thresholds.ts';
import { readStats, REQUEST_TIMEOUT, REQUEST_TIMEOUT_SECONDS, waitForDrain } from './drain.ts';

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
  /** The scripts use no groups, so every check is in the root group. */
  root_group?: { checks?: CheckTally[] };
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
  refuseEmptyLoad(definition.load);
  // Custom metrics must exist in the init context.
  const counters = new Map(definition.counters.map((counter) => [counter.name, new Counter(counter.name)]));
  const iterationErrors = new Counter(ITERATION_ERRORS);
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

  // The status a request expects (401 for a forgery) is its only expected one: k6 counts any other in http_req_failed.
  const toBatch = (request: PlannedRequest): ObjectBatchRequest => ({
    method: 'POST',
    url: settings.baseUrl + request.path,
    body: request.body,
    params: { headers: request.headers, tags: webhookTags(request), timeout: REQUEST_TIMEOUT, responseCallback: expecting(request.expectedStatus) },
  });

  const record = (request: PlannedRequest, response: RefinedResponse<ResponseType | undefined>) => {
    const expected = request.expectedStatus;
    check(response, { [checkName(request)]: (r) => r.status === expected }, request.tags);
    for (const counter of definition.counters) {
      if (counter.perAnswer) counters.get(counter.name)!.add(counter.perAnswer(request, response.status) ? 1 : 0);
    }
  };

  const iterate = async (data: RunData): Promise<void> => {
    const iteration = exec.scenario.iterationInTest;
    for (const counter of definition.counters) {
      if (counter.perIteration) counters.get(counter.name)!.add(counter.perIteration(iteration));
    }
    const requests = await definition.plan(iteration, { runId: data.runId, settings });
    // A batch goes out on parallel connections: the copies of a duplicate storm arrive together.
    const responses = http.batch(requests.map(toBatch));
    requests.forEach((request, i) => record(request, responses[i]!));
  };

  return {
    options,
    setup(): RunData {
      // A wrong ADMIN_TOKEN found now, not after the whole load.
      if (definition.drain) readStats(settings.baseUrl + definition.drain.statsPath, settings.adminToken ?? '', Date.now() + REQUEST_TIMEOUT_SECONDS * 1000);
      const runId = settings.runId ?? newRunId();
      console.log(runIdLine(definition.name, runId));
      return { runId };
    },
    async iterate(data: RunData): Promise<void> {
      try {
        await iterate(data);
      } catch (error) {
        // Counted as the Node runner counts it; k6 itself logs the error and goes on with the next iteration.
        iterationErrors.add(1);
        throw error;
      }
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
        checks: (data.root_group?.checks ?? []).map(({ name, passes, fails }) => ({ name, passes, fails })),
      });
      return { stdout: formatSummary(summary), [settings.summaryPath]: JSON.stringify(summary, null, 2) };
    },
  };
}
