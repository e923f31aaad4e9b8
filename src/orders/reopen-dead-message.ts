import { transaction, type Sql } from '../db/client';
import { WagateError } from '../errors';
import type { ReplayOutcome } from '../queue/dead-letters';
import type { QueueMessage } from '../queue/message';
import { ERASED } from './erasure';
import { SETTLED_NOT_RESENT } from './reply-operations';

/**
 * A worker records a message dead just after the broker confirmed its dead letter. A replay
 * that reopened the record in between would be overwritten by that write, and its new copy
 * skipped as finished: the message lost. So a record still 'processing' is reopened only once
 * it has not changed for this long (a worker that died there left it so for good).
 */
export const DEAD_LETTER_SETTLE_SECONDS = 30;

/**
 * What a reopen changed, to put back if the copy does not go. Times as Postgres's text, and
 * sent back as text: postgres.js sends a parameter it is told is a timestamp through a JS Date,
 * which keeps milliseconds only.
 */
interface Reopened {
  id: string;
  /** The record's updated_at as the reopen wrote it: the undo applies only while nothing changed it since. */
  version: string;
  status: string;
  last_error: string | null;
  waiting_until: string | null;
  retry_attempt: number | null;
  retry_attempt_until: string | null;
  updated_at: string;
  replies: { id: string; status: string; sending_attempt: string | null; updated_at: string }[];
}

/**
 * Reopens the records of a dead letter an operator replays, so the worker takes it again:
 * the message back to queued, a reply that failed permanently back to pending (the operator
 * decided to try again), unless an operator settled it as not to be resent. A reply already sent stays sent, so nothing is duplicated.
 * 'skipped', and nothing published, when the message was cleaned up, erased or finished
 * meanwhile (the worker would skip it); 'settling' when a worker may still be recording it dead.
 *
 * The reopen commits before the copy is published (`republish`, with the broker's confirm): a
 * worker's claim reads the reply in the snapshot it starts with, and one that began before the
 * commit would find the reply still failed. When no queue takes the copy ('unroutable'), or
 * its publish fails, a dead record's reopen is undone, unless a worker has changed the records
 * since (the copy went after all): the message stays dead with its reason, its reply failed,
 * and a letter an operator then drops is not brought back by requeue-stuck as a queued record.
 */
export async function reopenDeadMessage(sql: Sql, message: Pick<QueueMessage, 'source' | 'messageId'>, unsentAttempts: readonly string[],
  republish: () => Promise<boolean>): Promise<ReplayOutcome> {
  const reopened = await reopen(sql, message, unsentAttempts);
  if (reopened === 'settling') return 'settling';
  if (!reopened) return 'skipped';
  let routed: boolean;
  try {
    routed = await republish();
  } catch (error) {
    await undoReopen(sql, reopened).catch((undoError: unknown) => {
      throw new WagateError('BROKER_UNAVAILABLE', `${(error as Error).message}; and the record of ${message.source}:${message.messageId} could not be put back (${(undoError as Error).message}): it stays queued, so replay its letter again once both answer, rather than purge it`, { cause: error });
    });
    throw error;
  }
  if (routed) return 'replayed';
  await undoReopen(sql, reopened);
  return 'unroutable';
}

async function reopen(sql: Sql, message: Pick<QueueMessage, 'source' | 'messageId'>, unsentAttempts: readonly string[]): Promise<Reopened | 'settling' | null> {
  const { source, messageId } = message;
  return transaction(sql, async (tx) => {
    // 'queued' is taken too: a replay of 0.3.5 or earlier that committed but could not publish left it so.
    // An erased customer's message keeps its final status ('dead' among them) but loses its
    // number: reopened, its queue copy would write the personal data back and message them.
    // Past PERSONAL_DATA_RETENTION_DAYS a record's content is gone: the letter's copy would
    // write the customer's name and a reply text back, so it is not reopened (as `release`).
    const [before] = await tx<Omit<Reopened, 'version' | 'replies'>[]>`
      SELECT id::text AS id, status, last_error, waiting_until::text AS waiting_until, retry_attempt, retry_attempt_until::text AS retry_attempt_until,
             updated_at::text AS updated_at
      FROM webhook_messages
      WHERE webhook_source = ${source} AND message_id = ${messageId} AND status IN ('dead', 'processing', 'queued')
        AND phone_number IS DISTINCT FROM ${ERASED}
        AND payload IS NOT NULL
        AND NOT (status = 'processing' AND updated_at > now() - make_interval(secs => ${DEAD_LETTER_SETTLE_SECONDS}))
      FOR UPDATE`;
    if (!before) {
      // Told apart from a record no replay will reopen: this one a replay in a minute will.
      const [settling] = await tx`
        SELECT 1 FROM webhook_messages
        WHERE webhook_source = ${source} AND message_id = ${messageId} AND status = 'processing'
          AND phone_number IS DISTINCT FROM ${ERASED} AND payload IS NOT NULL`;
      return settling ? 'settling' : null;
    }
    const [after] = await tx<{ version: string }[]>`
      UPDATE webhook_messages SET status = 'queued', last_error = NULL, waiting_until = NULL, retry_attempt = NULL, retry_attempt_until = NULL, updated_at = now()
      WHERE id = ${before.id}::bigint
      RETURNING updated_at::text AS version`;
    // A reply whose text retention has removed stays failed: there is nothing to send. So does
    // one an operator settled as not to be resent: a replay of its message (one of many, say)
    // does not overrule that, and the worker dead-letters the message again without a call.
    // So is one left 'sending' by an attempt whose mark went unanswered (the letter's tokens),
    // when its dead write did not land: nothing was sent, and the replayed copy carries no token.
    const replies = await tx<Reopened['replies']>`
      WITH old AS (
        SELECT id, status, sending_attempt, updated_at FROM outbound_messages
        WHERE webhook_source = ${source} AND inbound_message_id = ${messageId} AND body IS NOT NULL
          AND ((status = 'failed' AND last_error IS DISTINCT FROM ${SETTLED_NOT_RESENT})
            OR (status = 'sending' AND sending_attempt = ANY(${unsentAttempts}::uuid[])))
        FOR UPDATE)
      UPDATE outbound_messages o SET status = 'pending', sending_attempt = NULL, updated_at = now()
      FROM old WHERE o.id = old.id
      RETURNING old.id::text AS id, old.status, old.sending_attempt::text AS sending_attempt, old.updated_at::text AS updated_at`;
    return { ...before, version: after!.version, replies: [...replies] };
  });
}

/**
 * Puts back what the reopen changed, where nothing has changed it since (the record's updated_at,
 * the replies still pending), updated_at included: a record 'processing' must keep the age the
 * next replay's settle period and a worker's dead write (applied to the version it read) go by.
 */
async function undoReopen(sql: Sql, reopened: Reopened): Promise<void> {
  // Only a dead record is put back. One still queued or processing (its worker died before
  // recording it dead, or a replay of 0.3.5 left it so) stays reopened, as it always did: a
  // worker's dead write that the reopen's newer version refused meanwhile would be undone too.
  if (reopened.status !== 'dead') return;
  await transaction(sql, async (tx) => {
    const undone = await tx`
      UPDATE webhook_messages SET status = ${reopened.status}, last_error = ${reopened.last_error}, waiting_until = ${reopened.waiting_until}::text::timestamptz,
             retry_attempt = ${reopened.retry_attempt}, retry_attempt_until = ${reopened.retry_attempt_until}::text::timestamptz,
             updated_at = ${reopened.updated_at}::text::timestamptz
      WHERE id = ${reopened.id}::bigint AND status = 'queued' AND updated_at::text = ${reopened.version}`;
    if (undone.count === 0 || reopened.replies.length === 0) return;
    await tx`
      UPDATE outbound_messages o SET status = r.status, sending_attempt = r.sending_attempt::uuid, updated_at = r.updated_at::timestamptz
      FROM jsonb_to_recordset(${JSON.stringify(reopened.replies)}::text::jsonb) AS r(id bigint, status text, sending_attempt text, updated_at text)
      WHERE o.id = r.id AND o.status = 'pending'`;
  });
}
