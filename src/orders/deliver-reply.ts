import { randomUUID } from 'node:crypto';
import type { Sql } from '../db/client';
import { neverReachedServer } from '../db/postgres-errors';
import { foldReceiptsNamingReply, foldReceiptsOfUnknownReply, replyReference } from '../ledger/fold-receipts';
import type { ReplyClient } from '../replies/reply-clients';
import type { Metrics } from '../telemetry/metrics';
import { PermanentError, RetryableError } from '../errors';
import { ERASED, NOT_SENT_ERASED } from './erasure';
import type { OutboundRow } from './record-decision';
import { confirmsCancelledOrder, markSending, NOT_SENT_ORDER_CANCELLED, type SendingMark } from './mark-sending';
import { settleReplies, type ReplySettlement } from './settle-replies';
import { writeProviderAnswer } from './write-provider-answer';

/** 'given_back': not sent, and the reply left as it was, since the worker's lease on the shard would not cover the call (Finishing.mayCall). */
export type DeliveryResult = 'sent' | 'unknown' | 'already_settled' | 'given_back';

/** Why a reply found still 'sending' is unknown: the attempt that marked it died during its provider call. */
export const ORPHANED_SEND = 'an earlier attempt stopped during the provider call';


/**
 * Sends a reply at most once. The row is marked 'sending' (committed) before the provider
 * is called; a row found still 'sending' means an earlier attempt died mid-call, so its fate
 * is unknown and it is not sent again. Only 'pending' and 'retry' (definitely not sent) may send.
 */
/** A reply the provider accepted whose 'sent' could not be written (a long Postgres outage). */
export interface AcceptedUnrecorded {
  replyId: string;
  providerMessageId: string;
}

/** The accepted reply a delivery's error names, for the worker's log; undefined for any other error. */
export function acceptedUnrecordedOf(error: unknown): AcceptedUnrecorded | undefined {
  return (error as { acceptedUnrecorded?: AcceptedUnrecorded } | null)?.acceptedUnrecorded;
}

export async function deliverReply(
  sql: Sql,
  source: 'whatsapp' | 'twilio',
  outbound: OutboundRow,
  sendReply: ReplyClient,
  metrics: Metrics,
  finishing: Finishing = {},
): Promise<DeliveryResult> {
  const result = await claimAndSend(sql, source, outbound, sendReply, metrics, finishing);
  // The paths that wrote no reply state of their own finish the message apart.
  if (finishing.finish && result === 'already_settled') await finishMessage(sql, source, finishing.finish);
  return result;
}

/** What the inbound message becomes once its reply is settled. */
export type MessageFinish = NonNullable<ReplySettlement['finish']>;

export interface Finishing {
  /** The inbound message to finish with the reply's last state; none for an operator's resend. */
  finish?: MessageFinish;
  /** Marks the reply 'sending' (markSending), true if it moved; the worker passes a micro-batcher. */
  markSending?(mark: SendingMark): Promise<boolean>;
  /** This attempt's token, when the caller marked the reply itself (an operator's resend); else a new one. */
  attempt?: string;
  /**
   * Tokens of earlier attempts of this message whose marks went unanswered (SendingMark): the
   * reply may be 'sending' under one of them with nothing sent, and is then taken over.
   */
  unsentAttempts?: readonly string[];
  /**
   * Told this attempt's token when its mark failed, the provider not called: the mark may have
   * committed all the same, and the message's retry carries the token to its next attempt.
   */
  onMarkUnanswered?(attempt: string): void;
  /** Writes a settlement (settleReplies), likewise. Each is one statement of its own by default. */
  settle?(settlement: ReplySettlement): Promise<void>;
  /**
   * Writes a refusal, the provider having sent nothing: 'retry' or 'failed' (settleFailure) by
   * default; an operator's resend puts the reply back as it was instead, in the same one
   * statement, so that no crash between two writes can leave it failed.
   */
  refuse?(status: 'retry' | 'failed', error: string): Promise<void>;
  /**
   * Whether a provider call may start: the worker's shard stays its own for longer than a call
   * can last (waiting for a late heartbeat if need be). Asked before the reply is marked
   * 'sending' and again once it is, since that commit may be slow; none for an operator's resend.
   */
  mayCall?(): Promise<boolean>;
}

async function claimAndSend(
  sql: Sql,
  source: 'whatsapp' | 'twilio',
  outbound: OutboundRow,
  sendReply: ReplyClient,
  metrics: Metrics,
  finishing: Finishing,
): Promise<DeliveryResult> {
  const mark = finishing.markSending ?? (async (one: SendingMark) => (await markSending(sql, [one]))[0]!);
  if (finishing.mayCall && !(await finishing.mayCall())) return 'given_back';
  const attempt = finishing.attempt ?? randomUUID();
  const unsentAttempts = finishing.unsentAttempts ?? [];
  let marked: boolean;
  try {
    marked = await mark({ replyId: outbound.id, attempt, unsentAttempts });
  } catch (error) {
    // Only a mark that may have committed leaves its token for the next attempt: during an
    // outage, marks that never reached Postgres would crowd out of the carried tokens the one
    // the reply is 'sending' under, and the reply would end unknown, never sent.
    if (!neverReachedServer(error)) finishing.onMarkUnanswered?.(attempt);
    throw error;
  }
  if (marked && finishing.mayCall && !(await finishing.mayCall())) {
    // Marked but not called: back to sendable, so that the worker that gets the message next
    // sends it, instead of finding it 'sending' and taking its fate for unknown. If that cannot
    // be written either, the message goes back all the same and its reply ends unknown: never
    // a call outside the lease.
    await unmarkSending(sql, outbound, attempt).catch(() => undefined);
    return 'given_back';
  }
  if (!marked) {
    const [erased] = await sql`
      UPDATE outbound_messages SET status = 'failed', last_error = ${NOT_SENT_ERASED}, sending_attempt = NULL, updated_at = now()
      WHERE id = ${outbound.id} AND recipient = ${ERASED}
        AND (status IN ('pending', 'retry') OR (status = 'sending' AND sending_attempt = ANY(${unsentAttempts}::uuid[])))
      RETURNING id`;
    if (erased) return 'already_settled';
    const [cancelled] = await sql`
      UPDATE outbound_messages o SET status = 'failed', last_error = ${NOT_SENT_ORDER_CANCELLED}, sending_attempt = NULL, updated_at = now()
      WHERE o.id = ${outbound.id} AND ${confirmsCancelledOrder(sql)}
        AND (o.status IN ('pending', 'retry') OR (o.status = 'sending' AND o.sending_attempt = ANY(${unsentAttempts}::uuid[])))
      RETURNING o.id`;
    if (cancelled) return 'already_settled';
    // The mark's time, from the row as it was: a 'sending' row was last written by its mark.
    const [orphan] = await sql<{ markedAt: string }[]>`
      UPDATE outbound_messages o SET status = 'unknown', last_error = ${ORPHANED_SEND}, updated_at = now()
      FROM (SELECT id, updated_at FROM outbound_messages WHERE id = ${outbound.id} FOR UPDATE) before
      WHERE o.id = before.id AND o.status = 'sending'
      RETURNING before.updated_at::text AS "markedAt"`;
    if (orphan) {
      if (finishing.finish) await finishMessage(sql, source, finishing.finish);
      // The provider took the orphaned send if a receipt names its attempt: settled sent now,
      // not by the nightly repair.
      const sent = await foldReceiptsOfUnknownReply(sql, outbound.id, orphan.markedAt).catch(() => false);
      metrics.confirmations.inc({ provider: source, result: sent ? 'sent' : 'unknown' });
      return sent ? 'sent' : 'unknown';
    }
    // A reply that failed for good earlier (its message's dead-lettering did not finish, or a
    // lost copy was put back) keeps the message dead, where an operator can replay it.
    const [settled] = await sql<{ status: string; last_error: string | null }[]>`
      SELECT status, last_error FROM outbound_messages WHERE id = ${outbound.id}`;
    // Not sent for a cancelled order, its message's finish lost: finished now, not dead-lettered.
    if (settled?.status === 'failed' && settled.last_error === NOT_SENT_ORDER_CANCELLED) return 'already_settled';
    if (settled?.status === 'failed') throw new PermanentError(settled.last_error ?? 'the reply failed permanently earlier');
    // Another attempt held it 'sending' when this one tried, and has since put it back to be
    // sent again (the provider said retry). Finishing the message now would leave the reply
    // unsent with no queue message to send it; this copy goes through the retry tiers instead.
    if (settled?.status === 'pending' || settled?.status === 'retry') {
      throw new RetryableError('the reply was in another attempt\'s hands and is to be sent again; retrying');
    }
    return 'already_settled';
  }
  return sendMarkedReply(sql, source, outbound, sendReply, metrics, finishing, attempt);
}

/**
 * Receipts of a reply marked unknown that arrived while its send was under way settle it as
 * sent (foldReceipts); true when they did. Left undone when it fails: the reply's next receipt,
 * or cleanup's receipt repair, does it.
 */
async function settleFromEarlierReceipts(sql: Sql, replyId: string, attempt: string, sendStartedAt: number): Promise<boolean> {
  const withinSeconds = (performance.now() - sendStartedAt) / 1000 + RECEIPT_WINDOW_MARGIN_SECONDS;
  return foldReceiptsNamingReply(sql, replyId, attempt, withinSeconds).catch(() => false);
}

/** Slack for the lookup's window, measured on this process's timer, against the receipts' created_at. */
const RECEIPT_WINDOW_MARGIN_SECONDS = 5;

/**
 * Calls the provider for a reply this attempt has marked 'sending' (and committed), and records
 * what it answered: sent or unknown together with the message's finish (settleReplies); retry
 * or failed apart, and then throws a RetryableError or PermanentError for the consumer to
 * route, the message staying 'processing'.
 */
async function sendMarkedReply(
  sql: Sql,
  source: 'whatsapp' | 'twilio',
  outbound: OutboundRow,
  sendReply: ReplyClient,
  metrics: Metrics,
  finishing: Finishing,
  attempt: string,
): Promise<'sent' | 'unknown'> {
  // An operator's resend: a fold that failed is left to the reply's next receipt or cleanup.
  const settle = finishing.settle ?? (async (settlement: ReplySettlement) => void (await settleReplies(sql, [settlement])));
  const refuse = finishing.refuse ?? ((status: 'retry' | 'failed', error: string) => settleFailure(sql, outbound.id, status, error, attempt));
  const finish = finishing.finish ?? null;
  const started = performance.now();
  const outcome = await sendReply({ source, to: outbound.recipient, from: outbound.business_number, body: outbound.body, reference: replyReference(outbound.id, attempt) });
  metrics.providerDuration.observe({ provider: source }, (performance.now() - started) / 1000);
  switch (outcome.kind) {
    case 'sent':
      await writeProviderAnswer(() => settle({ replyId: outbound.id, status: 'sent', providerMessageId: outcome.providerMessageId, error: null, source, finish, attempt }))
        .catch((error: Error) => {
          // The next attempt finds the reply 'sending' and marks it unknown: without the
          // provider's id, its receipts reach no reply, and a resend would send it twice. The
          // worker logs both ids (acceptedUnrecordedOf), so that an operator can record it as
          // sent. A copy of the error of its own: a shared statement rejects every reply of its
          // batch with one error object. Its class, code and message come through unchanged
          // (they decide what happens to the message).
          const accepted: AcceptedUnrecorded = { replyId: outbound.id, providerMessageId: outcome.providerMessageId };
          throw Object.assign(Object.create(error) as Error, { acceptedUnrecorded: accepted });
        });
      metrics.confirmations.inc({ provider: source, result: 'sent' });
      return 'sent';
    case 'unknown':
      await writeProviderAnswer(() => settle({ replyId: outbound.id, status: 'unknown', providerMessageId: null, error: outcome.error, source, finish, attempt }));
      // Settled after all by a receipt that came while the send was under way: the provider sent it.
      if (await settleFromEarlierReceipts(sql, outbound.id, attempt, started)) {
        metrics.confirmations.inc({ provider: source, result: 'sent' });
        return 'sent';
      }
      metrics.confirmations.inc({ provider: source, result: 'unknown' });
      return 'unknown';
    case 'retry':
      // Unrecorded, the refusal still holds: the next attempt must not ask before its Retry-After.
      await writeRefusal(() => refuse('retry', outcome.error), finishing, attempt,
        (error) => new RetryableError(`${outcome.error}; the refusal could not be recorded (${error.message})`, outcome.retryAfterMs));
      metrics.confirmations.inc({ provider: source, result: 'retry' });
      throw new RetryableError(outcome.error, outcome.retryAfterMs);
    case 'permanent':
      await writeRefusal(() => refuse('failed', outcome.error), finishing, attempt);
      metrics.confirmations.inc({ provider: source, result: 'failed' });
      throw new PermanentError(outcome.error);
  }
}

/**
 * Records a refusal: the provider sent nothing. Should the write fail for good, the reply stays
 * 'sending' under this attempt's token, and the next attempt would take it for a send cut off
 * mid-call, unknown: a 429 would never be retried, a 131047 never dead-lettered. The token goes
 * on with the message instead, as after an unanswered mark, and the next attempt takes the reply
 * over and asks the provider again.
 */
async function writeRefusal(write: () => Promise<void>, finishing: Finishing, attempt: string, unrecorded?: (error: Error) => Error): Promise<void> {
  try {
    await writeProviderAnswer(write);
  } catch (error) {
    finishing.onMarkUnanswered?.(attempt);
    throw unrecorded ? unrecorded(error as Error) : error;
  }
}

/**
 * Undoes this attempt's markSending, the provider not called: its attempt count, and a
 * sendable status, 'pending' if it was read so, else 'retry' (a status read before the mark
 * may be stale; the mark moved it from one of the two, or took it over from 'sending').
 * Only this attempt's own mark (its token): another worker's, taken once the message went
 * back to it, is left alone.
 */
async function unmarkSending(sql: Sql, outbound: OutboundRow, attempt: string): Promise<void> {
  await sql`
    UPDATE outbound_messages SET status = ${outbound.status === 'pending' ? 'pending' : 'retry'}, attempts = attempts - 1,
      sending_attempt = NULL, updated_at = now()
    WHERE id = ${outbound.id} AND status = 'sending' AND sending_attempt = ${attempt}`;
}

/**
 * Only from 'sending': if another worker has meanwhile marked this send unknown (it took the
 * shard over while we were in the call), the reply stays unknown, in front of an operator,
 * rather than becoming a 'retry' that no queue message will ever pick up; and only under this
 * attempt's own token: a try of this write again after its answer was lost must not undo
 * another attempt's mark taken meanwhile. A customer erased during the call does not get the
 * provider's error text back: it may quote their number.
 */
async function settleFailure(sql: Sql, id: string, status: 'retry' | 'failed', error: string, attempt: string): Promise<void> {
  await sql`
    UPDATE outbound_messages SET status = ${status}, sending_attempt = NULL, updated_at = now(),
      last_error = CASE WHEN recipient = ${ERASED} THEN ${NOT_SENT_ERASED} ELSE ${error} END
    WHERE id = ${id} AND status = 'sending' AND sending_attempt = ${attempt}`;
}

/** The message's final status on its own, for a reply whose state this attempt did not write. */
export async function finishMessage(sql: Sql, source: string, finish: MessageFinish): Promise<void> {
  await sql`
    UPDATE webhook_messages SET status = ${finish.outcome}, last_error = NULL, processed_at = now(), updated_at = now()
    WHERE webhook_source = ${source} AND message_id = ${finish.messageId} AND status = 'processing'`;
}
