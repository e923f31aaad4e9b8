import type { Source } from '../config';
import type { Sql } from '../db/client';

/** How long before cleanup clears a held message's content it counts as expiring. */
const HELD_EXPIRY_NOTICE_HOURS = 24;

export interface HeldCount {
  /** Messages held over the rate limit whose content is still kept: `release` can still re-queue them. */
  held: number;
  /** Those that the next day's cleanup may clear (PERSONAL_DATA_RETENTION_DAYS), after which no release can. */
  expiring: number;
}

/**
 * The rate_limited messages `release` can still re-queue, per source, and how many of them
 * lose their content within a day. Held messages wait for an operator; nothing else tells one
 * that a genuine customer's order is about to become unreleasable, because the violation alert
 * resolves 15 minutes after the flood. Reads only held rows, found through their partial index.
 */
export async function countHeldMessages(sql: Sql, personalDataDays: number): Promise<Record<Source, HeldCount>> {
  const expiringAfterHours = Math.max(0, personalDataDays * 24 - HELD_EXPIRY_NOTICE_HOURS);
  const rows = await sql<{ source: Source; held: number; expiring: number }[]>`
    SELECT webhook_source AS source, count(*)::integer AS held,
      (count(*) FILTER (WHERE created_at < now() - make_interval(hours => ${expiringAfterHours})))::integer AS expiring
    FROM webhook_messages
    WHERE status = 'rate_limited' AND payload IS NOT NULL
    GROUP BY webhook_source`;
  const counts: Record<Source, HeldCount> = { whatsapp: { held: 0, expiring: 0 }, twilio: { held: 0, expiring: 0 } };
  for (const row of rows) counts[row.source] = { held: row.held, expiring: row.expiring };
  return counts;
}
