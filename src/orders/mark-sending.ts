import type { Sql } from '../db/client';
import { ERASED } from './erasure';

/**
 * Marks replies 'sending' (one more attempt) in one statement, for one reply or many: the
 * commit that must come before their provider calls. Only a reply that is definitely not
 * sent ('pending' or 'retry') and whose customer was not erased moves; for each reply, true
 * when it did, and then this attempt alone may call the provider.
 */
export async function markSending(sql: Sql, replyIds: readonly string[]): Promise<boolean[]> {
  const rows = await sql<{ id: string }[]>`
    UPDATE outbound_messages SET status = 'sending', attempts = attempts + 1, updated_at = now()
    WHERE id = ANY(${replyIds}::bigint[]) AND status IN ('pending', 'retry') AND recipient <> ${ERASED}
    RETURNING id::text`;
  const marked = new Set(rows.map((row) => row.id));
  return replyIds.map((id) => marked.has(id));
}
