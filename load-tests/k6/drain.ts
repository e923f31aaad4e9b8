/** The backlog scenario's drain, as k6's setup() and teardown() watch it: synchronous requests and sleeps. */
import { sleep } from 'k6';
import http from 'k6/http';
import type { Counter, Trend } from 'k6/metrics';
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

/** The same 10 s the Node runner gives a request (k6's default of 60 s is far past any ack worth having). */
export const REQUEST_TIMEOUT_SECONDS = 10;
export const REQUEST_TIMEOUT = `${REQUEST_TIMEOUT_SECONDS}s`;

/** A response's JSON body, or null for one that is none (an ingress's HTML 503). */
function jsonOf(response: { json(): unknown }): unknown {
  try {
    return response.json();
  } catch {
    return null;
  }
}

/** The backlog the stats endpoint reports, waiting out its rate limit or another caller until giveUpAt. */
export function readStats(url: string, adminToken: string, giveUpAt: number): BacklogRead {
  const get = () =>
    http.get(url, {
      headers: statsHeaders(adminToken),
      timeout: REQUEST_TIMEOUT,
      tags: { kind: 'stats' },
      responseCallback: http.expectedStatuses(...STATS_EXPECTED_STATUSES),
    });
  let response = get();
  while (statsBusy(response.status, jsonOf(response))) {
    const waitSeconds = retryAfterSeconds(response.headers['Retry-After']);
    if (Date.now() + waitSeconds * 1000 > giveUpAt) throw new StatsUnreadable(STATS_KEPT_BUSY, response.status);
    sleep(waitSeconds);
    response = get();
  }
  const backlog = response.status === 200 ? backlogRead(jsonOf(response)) : null;
  if (backlog === null) throw new StatsUnreadable(statsUnreadable(url, response.status), response.status);
  return backlog;
}

/**
 * Polls until nothing is queued or processing, or the timeout passes, and records the backlog
 * counters as the Node runner does. A drain that cannot be watched to its end fails both
 * backlog thresholds and is logged; teardown still returns, so the run ends with its verdicts.
 */
export function waitForDrain(drain: Drain, baseUrl: string, adminToken: string, counters: Map<string, Counter>, drainSeconds: Trend): void {
  const reads: BacklogRead[] = [];
  let readToTheEnd = false;
  try {
    watchDrain(drain, baseUrl, adminToken, reads, drainSeconds);
    readToTheEnd = true;
  } catch (error) {
    console.error(`the drain could not be watched: ${(error as Error).message}`);
  }
  const outcome = drainCounters(reads, readToTheEnd);
  counters.get('backlog_messages')!.add(outcome.backlog_messages);
  counters.get('backlog_left')!.add(outcome.backlog_left);
  counters.get('backlog_dead')!.add(outcome.backlog_dead);
}

function watchDrain(drain: Drain, baseUrl: string, adminToken: string, reads: BacklogRead[], drainSeconds: Trend): void {
  const { timeoutSeconds } = drain;
  const url = baseUrl + drain.statsPath;
  const giveUpAt = Date.now() + timeoutSeconds * 1000;
  const read = () => {
    const backlog = readStats(url, adminToken, giveUpAt);
    reads.push(backlog);
    return backlog.unfinished;
  };
  const built = read();
  console.log(`backlog built: ${built} messages queued or processing; start a worker now (waiting up to ${timeoutSeconds} s for the drain)`);
  const startMs = Date.now();
  const clock = createDrainClock(built, startMs);
  let left = built;
  // The whole watch ends by giveUpAt, however long the first read waited: teardownTimeout allows that and a margin.
  while (left > 0 && Date.now() < giveUpAt) {
    sleep(DRAIN_POLL_SECONDS);
    left = read();
    clock.observe(left, Date.now());
  }
  if (left === 0) drainSeconds.add(clock.secondsUntil(Date.now()));
}
