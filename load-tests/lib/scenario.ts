import type { PlannedRequest } from './payloads.ts';
import type { ScenarioDefaults, Settings } from './settings.ts';

/** The arrival of iterations, in k6's executor terms: open loop, so a slow server cannot slow the load down. */
export type ArrivalLoad =
  | { executor: 'constant-arrival-rate'; rate: number; durationSeconds: number; preAllocatedVUs: number; maxVUs: number }
  | {
      executor: 'ramping-arrival-rate';
      startRate: number;
      stages: { target: number; durationSeconds: number }[];
      preAllocatedVUs: number;
      maxVUs: number;
    };

export interface RunContext {
  runId: string;
  settings: Settings;
}

/** A custom counter and when it counts: per iteration (what the load sent) or per answer. */
export interface CounterDefinition {
  name: string;
  /** Added once per iteration: e.g. how many copies of an id it sent. */
  perIteration?: (iteration: number) => number;
  /** Counts an answer: e.g. a forged request that was not refused. */
  perAnswer?: (request: PlannedRequest, status: number) => boolean;
}

/** The wait for the backlog to drain: how long at most, and the stats endpoint's path that counts it. */
export interface Drain {
  timeoutSeconds: number;
  statsPath: string;
}

/**
 * A scenario, as both k6 and the Node runner run it: when iterations arrive, what each one
 * sends, what it must be answered, and the thresholds that decide the run.
 */
export interface ScenarioDefinition {
  name: string;
  description: string;
  load: ArrivalLoad;
  thresholds: Record<string, string[]>;
  counters: CounterDefinition[];
  /** The requests of one iteration, sent at once. iteration counts from 0 across the whole run. */
  plan(iteration: number, run: RunContext): Promise<PlannedRequest[]>;
  /** The most requests one iteration sends at once (1 if omitted); k6 sends a batch over this many connections. */
  requestsPerIteration?: number;
  /** After the load, wait until the gateway has no queued or processing message left (needs ADMIN_TOKEN). */
  drain?: Drain;
}

export interface ScenarioModule {
  name: string;
  defaults: ScenarioDefaults;
  define(settings: Settings): ScenarioDefinition;
}

/** Float slack when comparing areas: a stage's area in k6 is a sum of floats too. */
export const AREA_EPSILON = 1e-9;

/**
 * How many iterations a load starts, as k6's executors count them: a constant rate starts one
 * at 0 and one every 1/rate s while within the duration (3/s for 1.1 s: 4); a ramp starts the
 * n-th when the area under its rate reaches n.
 */
export function plannedIterations(load: ArrivalLoad): number {
  if (load.executor === 'constant-arrival-rate') return Math.ceil(load.rate * load.durationSeconds - AREA_EPSILON);
  const area = load.stages.reduce((sum, stage, n) => sum + ((n === 0 ? load.startRate : load.stages[n - 1]!.target) + stage.target) / 2 * stage.durationSeconds, 0);
  return Math.floor(area + AREA_EPSILON);
}

/**
 * Refuses a load that starts no iteration (a ramp whose area is under one: RATE=1 over 1 s).
 * With no request sent, every threshold passes, in k6 as in the Node runner, and the run would
 * say the gateway met them. Both runners call it once the scenario is defined.
 */
export function refuseEmptyLoad(load: ArrivalLoad): void {
  if (plannedIterations(load) < 1) {
    throw new Error('RATE and DURATION give this load no iteration to start, so it would send nothing and pass every threshold: raise RATE or DURATION');
  }
}

export function constantLoad(settings: Settings): ArrivalLoad {
  const { rate, durationSeconds, preAllocatedVUs, maxVUs } = settings;
  return { executor: 'constant-arrival-rate', rate, durationSeconds, preAllocatedVUs, maxVUs };
}

/** The counter both runners add 1 to for each iteration that threw (a script error); like any k6 metric, it shows once it has a sample. */
export const ITERATION_ERRORS = 'iteration_errors';

/** The share of a load's iterations that may be dropped (due while every VU was busy), as of its requests that may fail. */
export const DROPPED_SHARE_LIMIT = 0.01;

/**
 * The thresholds every scenario shares: the 300 ms target on every webhook's answer, the SLO on
 * answers tagged slo:ack, under 1 % failed requests (status other than expected, or no
 * answer), over 99 % passed checks, no iteration that threw, and at most 1 % of the iterations
 * dropped. An iteration that throws before it sends leaves no sample behind, and a run whose
 * every iteration threw (crypto.subtle missing on a k6 older than v0.58) would otherwise pass
 * every other threshold. So does one dropped: a gateway that stalled for seconds filled every
 * VU, and only those few in-flight requests timed the stall, while the thousands due meanwhile
 * were dropped unsent and the p99 fell on fast answers. The load is the scenario's own, a
 * constant one at the settings' rate if not given.
 */
export function baseThresholds(settings: Settings, options: { slo: boolean; load?: ArrivalLoad }): Record<string, string[]> {
  const load = options.load ?? constantLoad(settings);
  const thresholds: Record<string, string[]> = {
    'http_req_duration{webhook:yes}': [`p(99)<${settings.ackP99Ms}`],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    [ITERATION_ERRORS]: ['count==0'],
    dropped_iterations: [`count<=${Math.floor(plannedIterations(load) * DROPPED_SHARE_LIMIT)}`],
  };
  if (options.slo) thresholds['http_req_duration{slo:ack}'] = [`p(99)<${settings.sloP99Ms}`];
  return thresholds;
}

/** Senders in turn: iteration n is sent by sender n mod senders. */
export function senderIndex(iteration: number, settings: Settings): number {
  return iteration % settings.senders;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
