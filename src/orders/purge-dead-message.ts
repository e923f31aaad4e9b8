import type { Sql } from '../db/client';
import type { QueueMessage } from '../queue/message';
import { DEAD_LETTER_SETTLE_SECONDS } from './reopen-dead-message';

/** What a purged letter's record says of it, for `wagate requeue-stuck` and `dlq list` readers alike. */
export const PURGED_BY_OPERATOR = 'its dead letter was purged by an operator';

/**
 * Records dead the message of a dead letter an operator purges, before its letter goes. Its
 * record is normally dead already; one still 'queued' or 'processing' is a worker that
 * published the letter and could not record it (Postgres away past the write's retries), or a
 * replay stopped between its reopen and its undo. Left so, `requeue-stuck` put the purged
 * message back on the queue within hours, and its customer got the confirmation the shop had
 * settled in its own way. A reply never sent fails with it, as the worker's own dead-lettering
 * does; one mid-call is left to show as it is. False, and nothing changed, while the record
 * changed in the last DEAD_LETTER_SETTLE_SECONDS (a worker still recording it dead, or a
 * replay's reopen): the letter must stay, since that write may yet fail.
 */
export async function recordPurgedMessage(sql: Sql, message: QueueMessage): Promise<boolean> {
  const [row] = await sql<{ settled: boolean }[]>`
    WITH dead AS (
      UPDATE webhook_messages SET status = 'dead', updated_at = now(),
        last_error = CASE WHEN last_error IS NULL THEN ${PURGED_BY_OPERATOR} ELSE last_error || '; ' || ${PURGED_BY_OPERATOR} END
      WHERE webhook_source = ${message.source} AND message_id = ${message.messageId} AND status IN ('queued', 'processing')
        AND updated_at < now() - make_interval(secs => ${DEAD_LETTER_SETTLE_SECONDS})
      RETURNING id),
    unsent AS (
      UPDATE outbound_messages SET status = 'failed', last_error = coalesce(last_error, ${PURGED_BY_OPERATOR}), sending_attempt = NULL, updated_at = now()
      WHERE webhook_source = ${message.source} AND inbound_message_id = ${message.messageId} AND status IN ('pending', 'retry')
        AND EXISTS (SELECT 1 FROM dead)
      RETURNING id)
    -- The statement's snapshot reads the record as it was before the update above.
    SELECT NOT EXISTS (SELECT 1 FROM webhook_messages
                       WHERE webhook_source = ${message.source} AND message_id = ${message.messageId} AND status IN ('queued', 'processing')
                         AND id NOT IN (SELECT id FROM dead)) AS settled`;
  return row!.settled;
}
