import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';
import { transaction, type Sql } from '../db/client';
import { classifyPostgresError } from '../db/postgres-errors';
import { describeIssues } from '../errors';
import type { AdminRateLimit } from './admin-rate-limit';
import { secureEquals } from './secure-compare';

export interface StatsDeps {
  sql: Sql;
  adminToken: string | undefined;
  rateLimit: AdminRateLimit;
  /** Ready counts from the broker, or null when it cannot be asked; waited for as long as `alongside` at least. */
  queueDepths(alongside?: Promise<unknown>): Promise<{ queue: number | null; deadLetters: number | null }>;
}

const MAX_HOURS = 24 * 90;

const statsQuery = z.object({
  source: z.enum(['whatsapp', 'twilio'], { error: 'must be whatsapp or twilio' }).optional(),
  hours: z.coerce.number({ error: `must be a whole number of hours from 1 to ${MAX_HOURS}` })
    .int({ error: `must be a whole number of hours from 1 to ${MAX_HOURS}` })
    .min(1, { error: `must be a whole number of hours from 1 to ${MAX_HOURS}` })
    .max(MAX_HOURS, { error: `must be a whole number of hours from 1 to ${MAX_HOURS}` })
    .default(24),
});

/** A caller that finds stats being computed for another request may try again after this long. */
const STATS_BUSY_RETRY_AFTER_SECONDS = 1;

/**
 * The token of an `Authorization: Bearer <token>` header, or '' without one. The scheme is
 * case-insensitive and may be followed by several spaces (RFC 7235 §2.1, RFC 6750 §2.1):
 * clients and proxies that send `bearer` are within the standard.
 */
export function bearerToken(header: string): string {
  return /^bearer +(\S.*)$/i.exec(header)?.[1] ?? '';
}

/** Bearer ADMIN_TOKEN, compared in constant time. Without a token configured, stats are off. */
export function createAdminAuth(adminToken: string | undefined) {
  return function requireAdmin(req: Request, res: Response, next: NextFunction): void {
    const token = bearerToken(req.get('authorization') ?? '');
    if (!adminToken || !token || !secureEquals(token, adminToken)) {
      // Says only whether a token came (and whether stats are on at all): a wrong one learns
      // nothing more than that it is wrong.
      const error = !adminToken
        ? 'stats are off on this gateway: ADMIN_TOKEN is not set'
        : token ? 'wrong admin token' : 'admin token required: send Authorization: Bearer ADMIN_TOKEN';
      res.status(401).set('WWW-Authenticate', 'Bearer').json({ error });
      return;
    }
    next();
  };
}

const ERROR_STATUSES = ['malformed', 'dead'];
/** Every status a message row may have (migrations/005): each is in `counts`, at 0 when no row has it. */
const MESSAGE_STATUSES = ['queued', 'processing', 'processed', 'unmatched', 'dead', 'rate_limited', 'replay_rejected', 'malformed', 'erased'];

/**
 * Stats share the ingest's pool with the webhook commits that acks wait on, and a call scans
 * up to 2160 hours of messages. So a process computes one stats call at a time, its queries
 * one after another on one reserved connection: stats never hold more than one of the pool's
 * connections. A call that finds one under way gets 503 with Retry-After instead of waiting.
 */
export function createStatsHandler(deps: StatsDeps) {
  let computing = false;
  return async function getStats(req: Request, res: Response): Promise<void> {
    const query = statsQuery.safeParse(req.query);
    if (!query.success) {
      res.status(400).json({ error: describeIssues(query.error.issues) });
      return;
    }
    if (computing) {
      res.status(503).set('Retry-After', String(STATS_BUSY_RETRY_AFTER_SECONDS))
        .json({ error: `stats are being computed for another request; retry in ${STATS_BUSY_RETRY_AFTER_SECONDS} s` });
      return;
    }
    const { source, hours } = query.data;
    computing = true;
    // Free again once the reserved connection is back, not when the broker's answer fails first.
    const reading = transaction(deps.sql, (tx) => readStats(tx, hours, source ?? null)).finally(() => (computing = false));
    const [stats, depths] = await Promise.all([reading.catch(tooSlow), deps.queueDepths(reading)]);
    if (stats === TOO_SLOW) {
      // The same window would take as long again: no Retry-After, and the answer says what helps.
      res.status(503).json({ error: `stats over ${hours} hours took longer than the database's statement timeout (DB_STATEMENT_TIMEOUT_MS); ask for fewer hours` });
      return;
    }
    res.json({ source: source ?? 'all', hours, ...summarise(stats, depths) });
  };
}

type StatsRows = Awaited<ReturnType<typeof readStats>>;

const TOO_SLOW = Symbol('stats outlasted the statement timeout');

/**
 * A window whose rows Postgres could not read within the pool's statement timeout (a wide one
 * on a busy shop, or one waiting on a lock) is told apart from an outage, which goes on to the
 * error handler.
 */
function tooSlow(error: unknown): typeof TOO_SLOW {
  if (classifyPostgresError(error) === 'DATABASE_STATEMENT_TIMEOUT') return TOO_SLOW;
  throw error;
}

/**
 * The window is the `hours` whole UTC hours ending with the current, partial one; totals and
 * the series cover the same span and, read in one repeatable-read snapshot, add up the same.
 */
async function readStats(tx: Sql, hours: number, source: string | null) {
  await tx`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`;
  const [bounds] = await tx<{ since: Date; until: Date }[]>`
    SELECT date_trunc('hour', now(), 'UTC') - make_interval(hours => ${hours - 1}) AS since,
           date_trunc('hour', now(), 'UTC') + interval '1 hour' AS until`;
  const { since, until } = bounds!;
  const inWindow = tx`created_at >= ${since} AND created_at < ${until} AND (${source}::text IS NULL OR webhook_source = ${source})`;
  const statusRows = await tx<{ status: string; count: number; duplicates: number }[]>`
    SELECT status, count(*)::integer AS count, coalesce(sum(duplicate_count), 0)::integer AS duplicates
    FROM webhook_messages WHERE ${inWindow} GROUP BY status`;
  const [latency] = await tx<{ p50: number | null; p95: number | null; p99: number | null }[]>`
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY response_time_ms) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms) AS p95,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY response_time_ms) AS p99
    FROM webhook_messages WHERE ${inWindow}`;
  // Every hour of the window, quiet ones as zeros, so a chart's gaps are real silence.
  const hourly = await tx<{ hour: Date; messages: number; duplicates: number; errors: number }[]>`
    SELECT hour, coalesce(counted.messages, 0)::integer AS messages,
           coalesce(counted.duplicates, 0)::integer AS duplicates, coalesce(counted.errors, 0)::integer AS errors
    FROM generate_series(${since}::timestamptz, ${until}::timestamptz - interval '1 hour', interval '1 hour') AS hour
    LEFT JOIN (
      SELECT date_trunc('hour', created_at, 'UTC') AS hour, count(*) AS messages, sum(duplicate_count) AS duplicates,
             count(*) FILTER (WHERE status = ANY(${ERROR_STATUSES})) AS errors
      FROM webhook_messages WHERE ${inWindow} GROUP BY 1
    ) AS counted USING (hour)
    ORDER BY hour`;
  const replyRows = await tx<{ status: string; delivery_status: string | null; count: number }[]>`
    SELECT status, delivery_status, count(*)::integer AS count FROM outbound_messages
    WHERE ${inWindow} GROUP BY status, delivery_status`;
  return { statusRows, latency, hourly, replyRows };
}

function summarise({ statusRows, latency, hourly, replyRows }: StatsRows, depths: Awaited<ReturnType<StatsDeps['queueDepths']>>) {
  const messages = statusRows.reduce((sum, row) => sum + row.count, 0);
  const duplicates = statusRows.reduce((sum, row) => sum + row.duplicates, 0);
  const errors = statusRows.filter((row) => ERROR_STATUSES.includes(row.status)).reduce((sum, row) => sum + row.count, 0);
  return {
    messages,
    counts: Object.fromEntries([...MESSAGE_STATUSES.map((status) => [status, 0] as const), ...statusRows.map((row) => [row.status, row.count] as const)]),
    duplicates,
    duplicateRate: ratio(duplicates, messages + duplicates),
    errorRate: ratio(errors, messages),
    ackMs: { p50: toTenthMs(latency?.p50), p95: toTenthMs(latency?.p95), p99: toTenthMs(latency?.p99) },
    queueDepth: depths.queue,
    deadLetterDepth: depths.deadLetters,
    // Replies by send state; "unknown" ones need an operator (wagate replies unknown).
    replies: countBy(replyRows, (row) => row.status, ['sent', 'unknown', 'failed']),
    // Sent replies by the furthest receipt the provider reported; "none" before the first.
    // Twilio's undelivered is its failed (both final, one rank), as the alerts count it.
    deliveryStatus: countBy(replyRows.filter((row) => row.status === 'sent'),
      (row) => (row.delivery_status === 'undelivered' ? 'failed' : row.delivery_status ?? 'none'), []),
    hourly: hourly.map((row) => ({ ...row, hour: row.hour.toISOString() })),
  };
}

/** Percentiles interpolate between whole-millisecond samples; a tenth of a millisecond is all they can say. */
export function toTenthMs(ms: number | null | undefined): number | null {
  return ms === null || ms === undefined ? null : Math.round(ms * 10) / 10;
}

function countBy<T extends { count: number }>(rows: T[], key: (row: T) => string, always: string[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(always.map((name) => [name, 0]));
  for (const row of rows) counts[key(row)] = (counts[key(row)] ?? 0) + row.count;
  return counts;
}

function ratio(part: number, whole: number): number {
  return whole === 0 ? 0 : Number((part / whole).toFixed(4));
}
