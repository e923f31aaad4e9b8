import { newRunId, runIdLine } from '../lib/ids.ts';
import type { RunContext, ScenarioDefinition } from '../lib/scenario.ts';
import type { Settings } from '../lib/settings.ts';
import { buildSummary, type LoadSummary } from '../lib/summary.ts';
import { arrivalSchedule } from './arrival.ts';
import { StatsUnreadable } from '../lib/backlog.ts';
import { readStats, waitForDrain, type DrainHooks } from './drain.ts';
import { createHttpClient, REQUEST_TIMEOUT_MS, type HttpClient } from './http.ts';
import { createIteration, type IterationHooks } from './iteration.ts';
import { createRecorder, type Recorder } from './recorder.ts';

export type { AnswerRecord } from './iteration.ts';

export interface RunHooks extends IterationHooks, DrainHooks {}

/**
 * How long an interrupted run waits for the requests in flight before it sums up: the
 * gateway's hard promise for an ack is 2 s. What is still unanswered then is left out of the
 * summary, as k6 leaves out an interrupted iteration's requests.
 */
export const INTERRUPT_GRACE_MS = 2_000;

/**
 * The run could not start: the stats endpoint gave no count before the load. settingToCorrect
 * when BASE_URL or ADMIN_TOKEN is wrong (nobody answers, or the token is refused), not when the
 * gateway failed or stayed busy.
 */
export class StartRefused extends Error {
  constructor(message: string, readonly settingToCorrect: boolean, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * Runs a scenario as k6 would, in an open loop: iteration n starts when it is due, whatever
 * happened to earlier ones. http_req_duration is k6's; beside it, latency_from_due_ms counts
 * from when each request was due, so a stalled generator cannot hide delay (no coordinated
 * omission). An iteration due while every VU started is busy is dropped and counted in
 * dropped_iterations, and one more VU starts (up to MAX_VUS), as k6 does. When stop aborts, no further iteration starts, the drain is
 * not waited for, and the summary covers what ran.
 */
export async function runScenario(definition: ScenarioDefinition, settings: Settings, hooks: RunHooks = {}, stop?: AbortSignal): Promise<LoadSummary> {
  const run: RunContext = { runId: settings.runId ?? newRunId(), settings };
  const recorder = createRecorder(definition.counters);
  const client = createHttpClient();
  try {
    // A wrong ADMIN_TOKEN found now, not after the whole load.
    if (definition.drain) {
      await readStats(settings.baseUrl + definition.drain.statsPath, settings, recorder, client, performance.now() + REQUEST_TIMEOUT_MS).catch((error: Error) => {
        throw error instanceof StatsUnreadable ? new StartRefused(error.message, error.settingToCorrect, { cause: error }) : error;
      });
    }
    hooks.log?.(runIdLine(definition.name, run.runId));
    await runLoad(definition, run, recorder, client, hooks, stop);
    if (definition.drain) await waitForDrain(definition.drain, settings, recorder, client, hooks, stop);
  } finally {
    // Ends what an interrupted run left unanswered; those failures arrive after the summary below is taken, so it leaves them out.
    client.close();
  }
  return buildSummary({
    scenario: definition.name,
    description: definition.description,
    runId: run.runId,
    runner: 'node',
    baseUrl: settings.baseUrl,
    load: definition.load,
    thresholds: definition.thresholds,
    counterNames: definition.counters.map((counter) => counter.name),
    metrics: recorder.summarize(Object.keys(definition.thresholds)),
    checks: recorder.checks(),
    interrupted: stop?.aborted ? String(stop.reason) : undefined,
  });
}

async function runLoad(definition: ScenarioDefinition, run: RunContext, recorder: Recorder, client: HttpClient, hooks: RunHooks, stop?: AbortSignal): Promise<void> {
  const schedule = arrivalSchedule(definition.load);
  const { maxVUs } = definition.load;
  // As k6's arrival-rate executors: an iteration due while every VU started so far is busy is
  // dropped, and one more VU is started for the iterations after it, up to maxVUs.
  let vus = Math.min(definition.load.preAllocatedVUs, maxVUs);
  // Only the iterations in flight are kept: a 30-minute soak starts close to a million.
  const inFlight = new Set<Promise<void>>();
  const iterate = createIteration(definition, run, recorder, client, hooks);
  const startMs = performance.now();

  await new Promise<void>((resolve) => {
    let next = 0;
    // As in k6, an iteration's number counts the iterations started: a dropped one takes none,
    // so scenarios that key their requests on it (a duplicate storm's openers) stay whole.
    let started = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      stop?.removeEventListener('abort', finish);
      resolve();
    };
    stop?.addEventListener('abort', finish);
    const tick = () => {
      const now = performance.now();
      while (!stop?.aborted && next < schedule.total && startMs + schedule.dueMs(next) <= now) {
        const dueMs = startMs + schedule.dueMs(next++);
        if (inFlight.size >= vus) {
          recorder.dropped();
          if (vus < maxVUs) vus += 1;
          continue;
        }
        const running: Promise<void> = iterate(started++, dueMs).finally(() => inFlight.delete(running));
        inFlight.add(running);
      }
      if (!stop?.aborted && next < schedule.total) timer = setTimeout(tick, Math.max(0, startMs + schedule.dueMs(next) - performance.now()));
      else finish();
    };
    tick();
  });
  await settle(inFlight, stop);
}

/** Waits for the iterations in flight; once the run is interrupted, for INTERRUPT_GRACE_MS at most. */
async function settle(inFlight: Set<Promise<void>>, stop?: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onStop = () => {};
  const graceOver = new Promise<void>((resolve) => {
    onStop = () => void (timer = setTimeout(resolve, INTERRUPT_GRACE_MS));
    if (stop?.aborted) onStop();
    else stop?.addEventListener('abort', onStop, { once: true });
  });
  try {
    await Promise.race([Promise.all(inFlight), graceOver]);
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener('abort', onStop);
  }
}
