import { transaction, type Sql } from '../db/client';
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

/** The replayed copy went nowhere: the reopen is rolled back. */
class NotRepublished extends Error {}

/**
 * Reopens the records of a dead letter an operator replays, so the worker takes it again:
 * the message back to queued, a reply that failed permanently back to pending (the operator
 * decided to try again), unless an operator settled it as not to be resent. A reply already sent stays sent, so nothing is duplicated.
 * 'skipped', and nothing published, when the message was cleaned up, erased or finished
 * meanwhile (the worker would skip it), or when a worker may still be recording it dead.
 *
 * The copy is published (`republish`, with the broker's confirm) before the reopen commits,
 * and the reopen rolls back when no queue took it ('unroutable') or the publish failed: the
 * message stays dead with its reason, its reply failed, and a letter an operator then drops
 * is not brought back by requeue-stuck as a queued record. A worker that gets the copy first
 * waits at its claim on the row this holds, and finds it queued once it has committed; a
 * commit that fails after the confirm leaves the record dead, and the copy is skipped.
 */
export async function reopenDeadMessage(sql: Sql, message: Pick<QueueMessage, 'source' | 'messageId'>, unsentAttempts: readonly string[],
  republish: () => Promise<boolean>): Promise<ReplayOutcome> {
  const { source, messageId } = message;
  const reopened = await transaction(sql, async (tx) => {
    // 'queued' is taken too: a replay of 0.3.5 or earlier that committed but could not publish left it so.
    // An erased customer's message keeps its final status ('dead' among them) but loses its
    // number: reopened, its queue copy would write the personal data back and message them.
    // Past PERSONAL_DATA_RETENTION_DAYS a record's content is gone: the letter's copy would
    // write the customer's name and a reply text back, so it is not reopened (as `release`).
    const messages = await tx`UPDATE webhook_messages SET status = 'queued', last_error = NULL, waiting_until = NULL, retry_attempt = NULL, retry_attempt_until = NULL, updated_at = now()
             WHERE webhook_source = ${source} AND message_id = ${messageId} AND status IN ('dead', 'processing', 'queued')
               AND phone_number IS DISTINCT FROM ${ERASED}
               AND payload IS NOT NULL
               AND NOT (status = 'processing' AND updated_at > now() - make_interval(secs => ${DEAD_LETTER_SETTLE_SECONDS}))`;
    if (messages.count === 0) return 0;
    // A reply whose text retention has removed stays failed: there is nothing to send. So does
    // one an operator settled as not to be resent: a replay of its message (one of many, say)
    // does not overrule that, and the worker dead-letters the message again without a call.
    // So is one left 'sending' by an attempt whose mark went unanswered (the letter's tokens),
    // when its dead write did not land: nothing was sent, and the replayed copy carries no token.
    await tx`UPDATE outbound_messages SET status = 'pending', sending_attempt = NULL, updated_at = now()
             WHERE webhook_source = ${source} AND inbound_message_id = ${messageId} AND body IS NOT NULL
               AND ((status = 'failed' AND last_error IS DISTINCT FROM ${SETTLED_NOT_RESENT})
                 OR (status = 'sending' AND sending_attempt = ANY(${unsentAttempts}::uuid[])))`;
    if (!(await republish())) throw new NotRepublished();
    return messages.count;
  }).catch((error: unknown) => {
    if (error instanceof NotRepublished) return 'unroutable' as const;
    throw error;
  });
  if (reopened === 'unroutable') return reopened;
  return reopened > 0 ? 'replayed' : 'skipped';
}
