import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';
import type { Sql } from '../db/client';
import { describeIssues } from '../errors';
import type { AdminRateLimit } from './admin-rate-limit';
import { secureEquals } from './secure-compare';

export interface StatsDeps {
  sql: Sql;
  adminToken: string | undefined;
  rateLimit: AdminRateLimit;
  /** Ready counts from the broker, or null when it cannot be asked. */
  queueDepths(): Promise<{ queue: number | null; deadLetters: number | null }>;
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

/** Bearer ADMIN_TOKEN, compared in constant time. Without a token configured, stats are off. */
export function createAdminAuth(adminToken: string | undefined) {
  return function requireAdmin(req: Request, res: Response, next: NextFunction): void {
    const header = req.get('authorization') ?? '';
    const token = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    if (!adminToken || !token || !secureEquals(token, adminToken)) {
      // Says only whether a token came: a wrong one learns nothing more than that it is wrong.
      const error = token ? 'wrong admin token' : 'admin token required: send Authorization: Bearer ADMIN_TOKEN';
      res.status(401).set('WWW-Authenticate', 'Bearer').json({ error });
      return;
    }
    next();
  };
}

const ERROR_STATUSES = ['malformed', 'dead'];

export function createStatsHandler(deps: StatsDeps) {
  return async function getStats(req: Request, res: Response): Promise<void> {
    const query = statsQuery.safeParse(req.query);
    if (!query.success) {
      res.status(400).json({ error: describeIssues(query.error.issues) });
      return;
    }
    const { source, hours } = query.data;
    const sourceFilter = source ?? null;
    const [statusRows, [latency], hourly, depths, replyRows] = await Promise.all([
      deps.sql<{ status: string; count: number; duplicates: number }[]>`
        SELECT status, count(*)::integer AS count, coalesce(sum(duplicate_count), 0)::integer AS duplicates
        FROM webhook_messages
        WHERE created_at > now() - make_interval(hours => ${hours})
          AND (${sourceFilter}::text IS NULL OR webhook_source = ${sourceFilter})
        GROUP BY status`,
      deps.sql<{ p50: number | null; p95: number | null; p99: number | null }[]>`
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY response_time_ms) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms) AS p95,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY response_time_ms) AS p99
        FROM webhook_messages
        WHERE created_at > now() - make_interval(hours => ${hours})
          AND (${sourceFilter}::text IS NULL OR webhook_source = ${sourceFilter})`,
      deps.sql<{ hour: Date; messages: number; duplicates: number; errors: number }[]>`
        SELECT date_trunc('hour', created_at) AS hour, count(*)::integer AS messages,
               coalesce(sum(duplicate_count), 0)::integer AS duplicates,
               (count(*) FILTER (WHERE status = ANY(${ERROR_STATUSES})))::integer AS errors
        FROM webhook_messages
        WHERE created_at > now() - make_interval(hours => ${hours})
          AND (${sourceFilter}::text IS NULL OR webhook_source = ${sourceFilter})
        GROUP BY 1 ORDER BY 1`,
      deps.queueDepths(),
      deps.sql<{ status: string; delivery_status: string | null; count: number }[]>`
        SELECT status, delivery_status, count(*)::integer AS count FROM outbound_messages
        WHERE created_at > now() - make_interval(hours => ${hours})
          AND (${sourceFilter}::text IS NULL OR webhook_source = ${sourceFilter})
        GROUP BY status, delivery_status`,
    ]);
    const counts = Object.fromEntries(statusRows.map((row) => [row.status, row.count]));
    const messages = statusRows.reduce((sum, row) => sum + row.count, 0);
    const duplicates = statusRows.reduce((sum, row) => sum + row.duplicates, 0);
    const errors = statusRows.filter((row) => ERROR_STATUSES.includes(row.status)).reduce((sum, row) => sum + row.count, 0);
    res.json({
      source: source ?? 'all',
      hours,
      messages,
      counts,
      duplicates,
      duplicateRate: ratio(duplicates, messages + duplicates),
      errorRate: ratio(errors, messages),
      ackMs: { p50: toTenthMs(latency?.p50), p95: toTenthMs(latency?.p95), p99: toTenthMs(latency?.p99) },
      queueDepth: depths.queue,
      deadLetterDepth: depths.deadLetters,
      // Replies by send state; "unknown" ones need an operator (wagate replies unknown).
      replies: countBy(replyRows, (row) => row.status, ['sent', 'unknown', 'failed']),
      // Sent replies by the furthest receipt the provider reported; "none" before the first.
      deliveryStatus: countBy(replyRows.filter((row) => row.status === 'sent'), (row) => row.delivery_status ?? 'none', []),
      hourly: hourly.map((row) => ({ ...row, hour: row.hour.toISOString() })),
    });
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
