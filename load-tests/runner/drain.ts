import {
  DRAIN_POLL_SECONDS,
  STATS_EXPECTED_STATUSES,
  STATS_KEPT_BUSY,
  createDrainClock,
  drainCounters,
  retryAfterSeconds,
  statsBusy,
  statsHeaders,
  statsUnreadable,
  StatsUnreadable,
  backlogRead,
  type BacklogRead,
} from '../lib/backlog.ts';
import type { Drain } from '../lib/scenario.ts';
import type { Settings } from '../lib/settings.ts';
import type { HttpClient } from './http.ts';
import type { Recorder } from './recorder.ts';

export interface DrainHooks {
  /** Called when the backlog scenario's load is over and it starts waiting for the drain. */
  onBacklogBuilt?(unfinished: number): Promise<void> | void;
  log?(line: string): void;
}

const INTERRUPTED = 'the run was interrupted';

/** Waits ms, or rejects at once when the run is interrupted. */
function pause(ms: number, stop?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stop?.aborted) return reject(new Error(INTERRUPTED));
    const onStop = () => {
      clearTimeout(timer);
      reject(new Error(INTERRUPTED));
    };
    const timer = setTimeout(() => {
      stop?.removeEventListener('abort', onStop);
      resolve();
    }, ms);
    stop?.addEventListener('abort', onStop, { once: true });
  });
}

/** The backlog the stats endpoint reports, waiting out its rate limit or another caller until giveUpAt. */
export async function readStats(url: string, settings: Settings, recorder: Recorder, client: HttpClient, giveUpAt: number, stop?: AbortSignal): Promise<BacklogRead> {
  const headers = statsHeaders(settings.adminToken ?? '');
  for (;;) {
    const { status, body, retryAfter, durationMs } = await client.getJson(url, headers, stop);
    if (stop?.aborted) throw new Error(INTERRUPTED);
    recorder.unchecked({ kind: 'stats' }, durationMs, !STATS_EXPECTED_STATUSES.includes(status));
    // The endpoint's own rate limit, or another caller's stats under way: wait as it says, then ask again, within the drain's time.
    if (statsBusy(status, body)) {
      const waitMs = retryAfterSeconds(retryAfter) * 1000;
      if (performance.now() + waitMs > giveUpAt) throw new StatsUnreadable(STATS_KEPT_BUSY, status);
      await pause(waitMs, stop);
      continue;
    }
    const backlog = backlogRead(body);
    if (status !== 200 || backlog === null) throw new StatsUnreadable(statsUnreadable(url, status), status);
    return backlog;
  }
}

/**
 * Polls the stats endpoint until nothing is queued or processing, or the timeout passes, and
 * records the backlog counters and how long the drain took. A drain that cannot be watched to
 * its end (the stats unreadable, the run interrupted) fails both backlog thresholds, as under
 * k6, and the run still ends with its verdicts and summary.
 */
export async function waitForDrain(drain: Drain, settings: Settings, recorder: Recorder, client: HttpClient, hooks: DrainHooks, stop?: AbortSignal): Promise<void> {
  const reads: BacklogRead[] = [];
  let readToTheEnd = false;
  try {
    if (stop?.aborted) throw new Error(INTERRUPTED);
    await watchDrain(drain, settings, recorder, client, hooks, reads, stop);
    readToTheEnd = true;
  } catch (error) {
    hooks.log?.(`the drain could not be watched: ${(error as Error).message}`);
  }
  const counters = drainCounters(reads, readToTheEnd);
  recorder.count('backlog_messages', counters.backlog_messages);
  recorder.count('backlog_left', counters.backlog_left);
  recorder.count('backlog_dead', counters.backlog_dead);
}

/** The drain itself, until nothing is left or the time is up; every count read goes into reads. */
async function watchDrain(drain: Drain, settings: Settings, recorder: Recorder, client: HttpClient, hooks: DrainHooks, reads: BacklogRead[], stop?: AbortSignal) {
  const { timeoutSeconds } = drain;
  // How long a read may wait out a busy stats endpoint: the same end as the drain's own wait,
  // moved on once onBacklogBuilt has had its time.
  let giveUpAt = performance.now() + timeoutSeconds * 1000;
  const read = async () => {
    const backlog = await readStats(settings.baseUrl + drain.statsPath, settings, recorder, client, giveUpAt, stop);
    reads.push(backlog);
    return backlog.unfinished;
  };
  const built = await read();
  hooks.log?.(`backlog built: ${built} messages queued or processing; start a worker now (waiting up to ${timeoutSeconds} s for the drain)`);
  await hooks.onBacklogBuilt?.(built);
  const startMs = performance.now();
  giveUpAt = startMs + timeoutSeconds * 1000;
  const clock = createDrainClock(built, startMs);
  let left = built;
  // From when the backlog was seen built, as under k6, but after onBacklogBuilt (starting a
  // worker takes time k6 never spends here); no teardown limit bounds this runner's wait.
  while (left > 0 && performance.now() - startMs < timeoutSeconds * 1000) {
    await pause(DRAIN_POLL_SECONDS * 1000, stop);
    left = await read();
    clock.observe(left, performance.now());
  }
  if (left === 0) recorder.trend('backlog_drain_seconds', clock.secondsUntil(performance.now()));
}
