/** The most hours the stats endpoint takes (src/http/admin-stats.ts). */
const MAX_STATS_HOURS = 2160;

/**
 * How the backlog scenario reads the gateway's unfinished work: its admin stats endpoint, which
 * counts the messages created in its last `hours`. The window covers the load and the whole
 * drain wait, with an hour to spare: were it shorter, the oldest of the backlog would leave the
 * count while no worker runs, and the drain would seem to start early.
 */
export function statsPathCovering(seconds: number): string {
  const hours = Math.min(MAX_STATS_HOURS, Math.ceil(seconds / 3600) + 1);
  return `/api/v1/whatsapp-hardened/stats?hours=${hours}`;
}
/**
 * How often the drain is polled, in seconds: within the stats endpoint's own limit
 * (ADMIN_RATE_LIMIT_PER_MINUTE, 30 a minute per client address by default).
 */
export const DRAIN_POLL_SECONDS = 5;
/** After a 429 or 503 from the stats endpoint without Retry-After, the wait before the next poll. */
export const DEFAULT_RETRY_AFTER_SECONDS = 10;

/**
 * The stats endpoint's "ask again later": 429 past its rate limit, 503 while the process
 * computes stats for another caller (a dashboard, an operator), or while Postgres or the
 * ingress are briefly away. A 503 whose error names the statement timeout is no such answer:
 * the same window would take as long again.
 */
export function statsBusy(status: number, body: unknown): boolean {
  return status === 429 || (status === 503 && !statementTimedOut(body));
}

/** The gateway's answer for a stats window that took longer than DB_STATEMENT_TIMEOUT_MS (src/http/admin-stats.ts). */
export function statementTimedOut(body: unknown): boolean {
  const error = (body as { error?: unknown } | null)?.error;
  return typeof error === 'string' && error.includes('statement timeout');
}

/**
 * What a stats poll may be answered: the counts, or one of the "ask again later" answers the
 * wait handles. Both runners pass these as the expected statuses, so only another answer (a
 * 401, a 500, none) counts in http_req_failed.
 */
export const STATS_EXPECTED_STATUSES: readonly number[] = [200, 429, 503];

export const STATS_KEPT_BUSY =
  'the stats endpoint kept answering 429 or 503 for longer than it could be waited for (10 s at the start, the drain timeout after the load): another client uses up its rate limit, or reads stats from the same pod all the time';

/**
 * A stats read that gave no count: status 0 for no answer, else what the endpoint answered
 * (429 or 503 for one busy until the read gave up).
 */
export class StatsUnreadable extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }

  /** No answer, an answer without wagate's counts, or a refused token: BASE_URL or ADMIN_TOKEN to correct. */
  get settingToCorrect(): boolean {
    return [0, 200, 401, 403].includes(this.status);
  }
}

/** Why a stats read that was not busy gave no count: no answer at all, a refused token, or anything else. */
export function statsUnreadable(url: string, status: number): string {
  if (status === 0) return `no answer from the stats endpoint at ${url}: is BASE_URL the gateway's, and is it up?`;
  if (status === 200) return `the stats endpoint at ${url} answered without the counts of wagate's stats: is BASE_URL the gateway's?`;
  if (status === 401 || status === 403) return `the stats endpoint answered ${status}: is ADMIN_TOKEN the gateway's?`;
  if (status === 503) {
    return `the stats endpoint at ${url} answered that reading that many hours took longer than the gateway's DB_STATEMENT_TIMEOUT_MS; a shorter DURATION and DRAIN_TIMEOUT ask for fewer`;
  }
  return `the stats endpoint answered ${status}: see the gateway's log`;
}

/** How long to wait after the stats endpoint answered 429 or 503: its Retry-After, or a default. */
export function retryAfterSeconds(header: string | null | undefined): number {
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_RETRY_AFTER_SECONDS;
}

export function statsHeaders(adminToken: string): Record<string, string> {
  return { Authorization: `Bearer ${adminToken}` };
}

/**
 * What one stats read says of the backlog: the messages still queued or processing, and those
 * dead (dead-lettered, or failed for good), in the stats window.
 */
export interface BacklogRead {
  unfinished: number;
  dead: number;
}

/** The backlog in a stats body; null when the body is not the stats shape. */
export function backlogRead(body: unknown): BacklogRead | null {
  const counts = (body as { counts?: Record<string, unknown> } | null)?.counts;
  if (!counts || typeof counts !== 'object') return null;
  const value = (status: string) => (typeof counts[status] === 'number' ? (counts[status] as number) : 0);
  return { unfinished: value('queued') + value('processing'), dead: value('dead') };
}

/**
 * When the drain began: the last poll that still saw the whole backlog, before the first that
 * saw less. The operator's reaction, `kubectl scale` and the worker's start are not the drain;
 * the figure is exact to one poll (DRAIN_POLL_SECONDS).
 */
export function createDrainClock(built: number, nowMs: number) {
  let lastFullMs = nowMs;
  let startedMs: number | null = null;
  return {
    observe(left: number, atMs: number): void {
      if (startedMs !== null) return;
      if (left < built) startedMs = lastFullMs;
      else lastFullMs = atMs;
    },
    secondsUntil(atMs: number): number {
      return (atMs - (startedMs ?? lastFullMs)) / 1000;
    },
  };
}

/**
 * The backlog counters once the drain's wait is over, recorded alike by both runners. `reads`
 * are the reads the wait made, the first being the backlog built. A wait that could not read
 * the stats to its end verified neither that a backlog built nor that it drained, so it fails
 * both thresholds: backlog_messages 0, backlog_left the last count read and at least 1 (a
 * counter without a sample would pass count==0). backlog_dead is the messages that went dead
 * while the wait watched, the increases from read to read: a worker that dead-letters everything (a refused Graph API token, a
 * broken catalog) empties the queues too, and only this tells that drain from a real one.
 */
export function drainCounters(reads: readonly BacklogRead[], readToTheEnd: boolean): { backlog_messages: number; backlog_left: number; backlog_dead: number } {
  const built = reads[0];
  const last = reads[reads.length - 1];
  // Summed read to read: the stats window is whole hours and slides during the wait, and dead
  // messages of an earlier run leaving it would hide as many new ones in a plain difference.
  const dead = reads.slice(1).reduce((sum, read, index) => sum + Math.max(0, read.dead - reads[index]!.dead), 0);
  if (readToTheEnd && built !== undefined && last !== undefined) return { backlog_messages: built.unfinished, backlog_left: last.unfinished, backlog_dead: dead };
  return { backlog_messages: 0, backlog_left: Math.max(last?.unfinished ?? 0, 1), backlog_dead: dead };
}
