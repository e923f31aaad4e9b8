import { DRAIN_POLL_SECONDS, STATS_KEPT_BUSY, createDrainClock, retryAfterSeconds, statsBusy, statsHeaders, unfinishedMessages } from '../lib/backlog.ts';
import { newRunId } from '../lib/ids.ts';
import type { PlannedRequest } from '../lib/payloads.ts';
import type { Drain, RunContext, ScenarioDefinition } from '../lib/scenario.ts';
import type { Settings } from '../lib/settings.ts';
import { buildSummary, type LoadSummary } from '../lib/summary.ts';
import { arrivalSchedule } from './arrival.ts';
import { createHttpClient, REQUEST_TIMEOUT_MS, type HttpClient } from './http.ts';
import { createRecorder, type Recorder } from './recorder.ts';

export interface AnswerRecord {
  messageId: string;
  kind: string;
  status: number;
}

export interface RunHooks {
  /** Every request's message id and answer (status 0: none), for checks against the database afterwards. */
  onAnswer?(answer: AnswerRecord): void;
  /** Called when the backlog scenario's load is over and it starts waiting for the drain. */
  onBacklogBuilt?(unfinished: number): Promise<void> | void;
  log?(line: string): void;
}

/**
 * Runs a scenario as k6 would, in an open loop: iteration n starts when it is due, whatever
 * happened to earlier ones, and its latency counts from that moment, so a stalled server
 * cannot hide delay (no coordinated omission). An iteration due while MAX_VUS are busy is
 * dropped and counted in dropped_iterations, as k6 does.
 */
export async function runScenario(definition: ScenarioDefinition, settings: Settings, hooks: RunHooks = {}): Promise<LoadSummary> {
  const run: RunContext = { runId: settings.runId ?? newRunId(), settings };
  const recorder = createRecorder(definition.counters);
  const client = createHttpClient();
  try {
    // A wrong ADMIN_TOKEN found now, not after the whole load.
    if (definition.drain) await readStats(settings.baseUrl + definition.drain.statsPath, settings, recorder, client, performance.now() + REQUEST_TIMEOUT_MS);
    await runLoad(definition, run, recorder, client, hooks);
    if (definition.drain) await waitForDrain(definition.drain, settings, recorder, client, hooks);
  } finally {
    client.close();
  }
  const metricKeys = Object.keys(definition.thresholds);
  return buildSummary({
    scenario: definition.name,
    description: definition.description,
    runId: run.runId,
    runner: 'node',
    baseUrl: settings.baseUrl,
    load: definition.load,
    thresholds: definition.thresholds,
    counterNames: definition.counters.map((counter) => counter.name),
    metrics: recorder.summarize(metricKeys),
  });
}

async function runLoad(definition: ScenarioDefinition, run: RunContext, recorder: Recorder, client: HttpClient, hooks: RunHooks): Promise<void> {
  const schedule = arrivalSchedule(definition.load);
  const maxVUs = definition.load.maxVUs;
  // Only the iterations in flight are kept: a 30-minute soak starts close to a million.
  const inFlight = new Set<Promise<void>>();
  // A scenario that throws is a broken script: the run stops with its error once the iterations in flight are done.
  let failure: { error: unknown } | null = null;
  const startMs = performance.now();

  const iterate = createIteration(definition, run, recorder, client, hooks);

  await new Promise<void>((resolve) => {
    let next = 0;
    // As in k6, an iteration's number counts the iterations started: a dropped one takes none,
    // so scenarios that key their requests on it (a duplicate storm's openers) stay whole.
    let started = 0;
    const tick = () => {
      const now = performance.now();
      while (failure === null && next < schedule.total && startMs + schedule.dueMs(next) <= now) {
        const dueMs = startMs + schedule.dueMs(next++);
        if (inFlight.size >= maxVUs) {
          recorder.dropped();
          continue;
        }
        const running: Promise<void> = iterate(started++, dueMs)
          .catch((error: unknown) => void (failure ??= { error }))
          .finally(() => inFlight.delete(running));
        inFlight.add(running);
      }
      if (failure === null && next < schedule.total) setTimeout(tick, Math.max(0, startMs + schedule.dueMs(next) - performance.now()));
      else resolve();
    };
    tick();
  });
  while (inFlight.size > 0) await Promise.all([...inFlight]);
  if (failure) throw (failure as { error: unknown }).error;
}

/** One iteration: its counters, its requests sent at once, each answer recorded with its latency from when the iteration was due. */
function createIteration(definition: ScenarioDefinition, run: RunContext, recorder: Recorder, client: HttpClient, hooks: RunHooks) {
  const iterate = async (iteration: number, dueMs: number) => {
    for (const counter of definition.counters) if (counter.perIteration) recorder.count(counter.name, counter.perIteration(iteration));
    const requests = await definition.plan(iteration, run);
    await Promise.all(requests.map((request) => sendOne(request, dueMs)));
  };
  const sendOne = async (request: PlannedRequest, dueMs: number) => {
    // How late the generator itself was: signing and a busy event loop delay the send, and that delay is in the latency too.
    recorder.trend('request_start_lag_ms', performance.now() - dueMs);
    const answer = await client.send(run.settings.baseUrl, request);
    hooks.onAnswer?.({ messageId: request.messageId, kind: request.tags.kind ?? '', status: answer.status });
    const waitedMs = performance.now() - dueMs;
    if (answer.error !== null) recorder.noAnswer(request.tags, waitedMs);
    else recorder.answer(request.tags, waitedMs, answer.status === request.expectedStatus);
    for (const counter of definition.counters) {
      if (counter.perAnswer) recorder.count(counter.name, counter.perAnswer(request, answer.status) ? 1 : 0);
    }
  };
  return iterate;
}

/** The unfinished messages the stats endpoint reports, waiting out its rate limit or another caller until giveUpAt. */
async function readStats(url: string, settings: Settings, recorder: Recorder, client: HttpClient, giveUpAt: number): Promise<number> {
  const headers = statsHeaders(settings.adminToken ?? '');
  for (;;) {
    const sentMs = performance.now();
    const { status, body, retryAfter } = await client.getJson(url, headers);
    recorder.unchecked({ kind: 'stats' }, performance.now() - sentMs, status);
    // The endpoint's own rate limit, or another caller's stats under way: wait as it says, then ask again, within the drain's time.
    if (statsBusy(status)) {
      const waitMs = retryAfterSeconds(retryAfter) * 1000;
      if (performance.now() + waitMs > giveUpAt) throw new Error(STATS_KEPT_BUSY);
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      continue;
    }
    const unfinished = unfinishedMessages(body);
    if (status !== 200 || unfinished === null) throw new Error(`the stats endpoint answered ${status}: is ADMIN_TOKEN the gateway's?`);
    return unfinished;
  }
}

/**
 * Polls the stats endpoint until nothing is queued or processing, or the timeout passes; records
 * how long it took. A drain that cannot be watched fails its thresholds, as under k6, and the run
 * still ends with its verdicts and summary.
 */
async function waitForDrain(drain: Drain, settings: Settings, recorder: Recorder, client: HttpClient, hooks: RunHooks): Promise<void> {
  try {
    await watchDrain(drain, settings, recorder, client, hooks);
  } catch (error) {
    // A counter without a sample would pass count==0, and the summary would call the run a pass;
    // a 0 adds nothing to a backlog already counted.
    recorder.count('backlog_messages', 0);
    recorder.count('backlog_left', 1);
    hooks.log?.(`the drain could not be watched: ${(error as Error).message}`);
  }
}

/** The drain itself, until nothing is left or the time is up. */
async function watchDrain(drain: Drain, settings: Settings, recorder: Recorder, client: HttpClient, hooks: RunHooks): Promise<void> {
  const { timeoutSeconds } = drain;
  const giveUpAt = performance.now() + timeoutSeconds * 1000;
  const read = () => readStats(settings.baseUrl + drain.statsPath, settings, recorder, client, giveUpAt);
  const built = await read();
  recorder.count('backlog_messages', built);
  hooks.log?.(`backlog built: ${built} messages queued or processing; start a worker now (waiting up to ${timeoutSeconds} s for the drain)`);
  await hooks.onBacklogBuilt?.(built);
  const startMs = performance.now();
  const clock = createDrainClock(built, startMs);
  let left = built;
  while (left > 0 && performance.now() - startMs < timeoutSeconds * 1000) {
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_SECONDS * 1000));
    left = await read();
    clock.observe(left, performance.now());
  }
  recorder.count('backlog_left', left);
  if (left === 0) recorder.trend('backlog_drain_seconds', clock.secondsUntil(performance.now()));
}
