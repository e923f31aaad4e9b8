import type { Sql } from '../db/client';

/** An outbox row whose message, serialised for the queue, is larger than the broker takes. */
export interface TooLargeRow {
  id: string;
  /** The claim it was found under (0: its owner's); a row claimed since belongs to that claim. */
  attempts: number;
  bytes: number;
}

/**
 * Records these messages dead, with their size and the limit, and deletes their outbox rows,
 * in one statement: the broker refuses such a message every time it is tried (RabbitMQ closes
 * the channel, and with it every publish in flight on it), so left in the outbox it would be
 * tried every 30 s for good, holding its sender's later messages behind it. Returns the message
 * ids recorded: a row claimed since, or a message no longer queued, is left to whoever has it.
 */
export async function recordTooLarge(sql: Sql, rows: readonly TooLargeRow[], limit: number): Promise<string[]> {
  const recorded = await sql<{ message_id: string }[]>`
    WITH gone AS (
      DELETE FROM outbox o
      USING unnest(${rows.map((row) => row.id)}::bigint[], ${rows.map((row) => row.attempts)}::integer[], ${rows.map((row) => row.bytes)}::bigint[])
        AS r(id, attempts, bytes)
      WHERE o.webhook_message_id = r.id AND o.attempts = r.attempts
      RETURNING o.webhook_message_id AS id, r.bytes)
    UPDATE webhook_messages m
    SET status = 'dead', updated_at = now(),
      last_error = format('%s bytes for the queue, more than BROKER_MAX_MESSAGE_BYTES (%s): the broker would refuse it', gone.bytes, ${limit}::bigint)
    FROM gone WHERE m.id = gone.id AND m.status = 'queued'
    RETURNING m.message_id`;
  return recorded.map((row) => row.message_id);
}
