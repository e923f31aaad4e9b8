import type { Sql } from '../db/client';

/**
 * How long the oldest personal data that `cleanup` should have cleared has been past
 * PERSONAL_DATA_RETENTION_DAYS, in seconds, or 0 when none has: the texts of finished replies
 * and the names and notes of orders, the oldest of each through its own index (migrations 042
 * and 043), read in order and stopped at the first (an aggregate read a week's worth). A
 * cleanup that fails every night, is cut short by its deadline, or is never scheduled shows
 * here; nothing else would say so until someone looked in the database.
 */
export async function personalDataOverdueSeconds(sql: Sql, personalDataDays: number): Promise<number> {
  const [row] = await sql<{ overdue: number }[]>`
    SELECT coalesce(greatest(0, extract(epoch FROM now() - make_interval(secs => ${personalDataDays * 86_400}) - least(
      (SELECT created_at FROM outbound_messages WHERE body IS NOT NULL AND status IN ('sent', 'failed', 'unknown') ORDER BY created_at LIMIT 1),
      (SELECT created_at FROM orders WHERE customer_name IS NOT NULL OR note IS NOT NULL ORDER BY created_at LIMIT 1)))), 0)::float8 AS overdue`;
  return row!.overdue;
}
