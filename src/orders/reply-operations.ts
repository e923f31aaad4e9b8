import { randomUUID } from 'node:crypto';
import type { Source } from '../config';
import { transaction, type Sql } from '../db/client';
import { acceptedUnrecordedOf, deliverReply } from './deliver-reply';
import { confirmsCancelledOrder } from './mark-sending';
import type { OutboundRow } from './record-decision';
import type { ReplyClient } from '../replies/reply-clients';
import type { Metrics } from '../telemetry/metrics';
import { withoutNumbers } from '../telemetry/without-numbers';
import { PermanentError, RetryableError, WagateError } from '../errors';
import { ERASED, NOT_SENT_ERASED } from './erasure';
import { failpoint } from '../failpoints';
import { UNDELIVERED } from './undelivered-replies';
import { foldReceipts, foldReceiptsOfUnknownReply } from '../ledger/fold-receipts';

export interface UnknownReply {
  id: string;
  source: string;
  inbound_message_id: string;
  recipient: string;
  last_error: string | null;
  updated_at: Date;
}

/**
 * How wagate's own note of a resend the provider took begins: it names the reply's and the
 * provider's ids, which the operator needs whole, and no word of the provider's.
 */
export const ACCEPTED_UNRECORDED = 'an operator\'s resend was accepted by the provider as';

export async function listUnknownReplies(sql: Sql): Promise<UnknownReply[]> {
  return sql<UnknownReply[]>`
    SELECT id::text, webhook_source AS source, inbound_message_id, recipient, last_error, updated_at
    FROM outbound_messages WHERE status = 'unknown' ORDER BY outbound_messages.id`;
}

/**
 * Sends a reply again, on an operator's decision: an 'unknown' one (e.g. after checking the
 * provider's console that it never arrived), or a 'sent' one whose receipt said the provider
 * could not deliver it (`wagate replies undelivered`), which the customer never got either.
 * Never done automatically. The reply goes straight to 'sending' in one commit before the call:
 * its message is finished, and unless a `dlq replay` reopens it, no queue copy will come to
 * settle a reply left in between. If the resend fails in a way that sent nothing (the
 * provider's own 503, a 429, a refused connection), the reply goes back to what it was,
 * 'unknown' or sent and undelivered, so that it can be resent later; so it does when the provider refuses the resend for good (an
 * expired token), which says nothing of the first attempt. One whose resend
 * stops midway (its answer not recorded) becomes 'unknown', whatever it was: the resend's own
 * fate is unknown then; so does one whose putting back cannot be written, its error saying
 * that nothing was sent. One that cannot be written at all (the database gone, the command
 * killed) is marked unknown by a worker later: markAbandonedSends. An undelivered reply lets go of its failed message at the mark (its id
 * moves to earlier_provider_message_ids, its delivery status is cleared), and takes it back only
 * if nothing was sent: sent again, it follows the new message's receipts.
 */
export async function resendReply(sql: Sql, id: string, sendReply: ReplyClient, metrics: Metrics): Promise<string> {
  // `before` is read under the row's lock, so it is the state this mark moved the reply from.
  // An undelivered reply lets go of its message here: whatever this resend comes to, the
  // failed message's id and receipt no longer describe it (an unknown outcome settled as sent
  // must not read as undelivered, and be resent once more).
  // The resend's own token: its writes settle only its own mark, and no retried message carries it.
  const attempt = randomUUID();
  // A receipt stored while the reply was still `sending` says the provider took it: resent, the
  // customer would get it twice. Settled sent by that receipt, and refused below as sent.
  await foldReceiptsOfUnknownReply(sql, id, null);
  const [row] = await sql<(OutboundRow & { webhook_source: 'whatsapp' | 'twilio'; was: 'unknown' | 'sent'; was_provider_id: string | null; was_delivery: string | null; was_attempt: string | null })[]>`
    UPDATE outbound_messages o SET status = 'sending', attempts = o.attempts + 1, updated_at = now(),
      sending_attempt = ${attempt},
      earlier_provider_message_ids = CASE WHEN before.was = 'sent'
        THEN array_append(o.earlier_provider_message_ids, o.provider_message_id) ELSE o.earlier_provider_message_ids END,
      provider_message_id = CASE WHEN before.was = 'sent' THEN NULL ELSE o.provider_message_id END,
      delivery_status = CASE WHEN before.was = 'sent' THEN NULL ELSE o.delivery_status END
    FROM (SELECT id, status AS was, provider_message_id AS was_provider_id, delivery_status AS was_delivery, sending_attempt AS was_attempt
          FROM outbound_messages WHERE id = ${id} FOR UPDATE) before
    WHERE o.id = before.id AND ${resendable(sql)} AND o.body IS NOT NULL AND o.recipient <> ${ERASED} AND NOT ${confirmsCancelledOrder(sql)}
    RETURNING o.id::text, o.kind, o.status, o.recipient, o.business_number, o.body, o.order_id::text, o.attempts, o.webhook_source,
      before.was, before.was_provider_id, before.was_delivery, before.was_attempt::text`;
  if (!row) {
    const [found] = await sql<{ status: string; delivery_status: string | null; resendable: boolean; has_body: boolean; cancelled_order: string | null }[]>`
      SELECT o.status, o.delivery_status, ${resendable(sql)} AS resendable, o.body IS NOT NULL AND o.recipient <> ${ERASED} AS has_body,
        CASE WHEN ${confirmsCancelledOrder(sql)} THEN o.order_id::text END AS cancelled_order
      FROM outbound_messages o WHERE o.id = ${id}`;
    if (found?.resendable && found.cancelled_order !== null) {
      const instead = found.status === 'unknown' ? `; settle it instead: wagate replies settle --id ${id} --as sent|failed` : '';
      throw new WagateError('OPERATION_REFUSED', `reply ${id} confirms order ${found.cancelled_order}, which the customer has cancelled since: it is not resent${instead}`);
    }
    if (found?.resendable && !found.has_body) {
      const instead = found.status === 'unknown' ? `settle it instead: wagate replies settle --id ${id} --as sent|failed` : 'reach the customer another way';
      throw new WagateError('OPERATION_REFUSED', `reply ${id} has no text any more (personal-data retention or an erasure removed it); ${instead}`);
    }
    if (found?.status === 'sent') {
      throw new WagateError('OPERATION_REFUSED', `reply ${id} was sent and its furthest receipt says ${found.delivery_status ?? 'nothing yet'}, not failed; only unknown replies and undelivered ones (wagate replies undelivered) can be resent`);
    }
    throw notUnknown(id, found?.status, 'resent');
  }
  await failpoint('replies.resend-after-mark');
  // Refused, now or for good, the provider sent nothing: the reply goes back to what it was, in
  // the one statement that records the refusal. A refusal of the resend (an expired token)
  // says nothing of the first attempt, and the operator may fix its cause and resend. An undelivered reply takes its failed message back, as if never resent.
  let putBack = false;
  let putBackFailed = false;
  let refusal: string | undefined;
  const putBackUnsent = async (status: 'retry' | 'failed', error: string) => {
    const reason = `resend ${status === 'failed' ? 'refused' : 'failed'}, nothing was sent: ${error}`;
    refusal = reason;
    const restore = row.was === 'sent';
    // Only from 'sending': a worker that marked it unknown meanwhile (a replay of its message) is left so.
    // Should this write fail for good, the reply is no longer as it was and the catch below
    // marks it unknown: a retryable refusal's error, wrapped, cannot tell it from one put back.
    putBackFailed = true;
    // An unknown reply takes back the token of the attempt that left it so: its receipts may still settle it.
    const [back] = await sql`UPDATE outbound_messages SET status = ${row.was}, sending_attempt = ${row.was === 'unknown' ? row.was_attempt : null}::uuid, updated_at = now(),
        last_error = CASE WHEN recipient = ${ERASED} THEN ${RESEND_NOT_SENT_ERASED} ELSE ${reason} END,
        provider_message_id = CASE WHEN ${restore} THEN ${row.was_provider_id} ELSE provider_message_id END,
        delivery_status = CASE WHEN ${restore} THEN ${row.was_delivery} ELSE delivery_status END,
        earlier_provider_message_ids = CASE WHEN ${restore}
          THEN NULLIF(earlier_provider_message_ids[1:cardinality(earlier_provider_message_ids) - 1], '{}') ELSE earlier_provider_message_ids END
      WHERE id = ${id} AND status = 'sending' AND sending_attempt = ${attempt} RETURNING id`;
    // A try whose commit landed with its answer lost finds nothing the second time: still put back.
    putBack ||= Boolean(back);
    putBackFailed = false;
  };
  try {
    // Marked here already: deliverReply's own mark moves only replies never sent.
    return await deliverReply(sql, row.webhook_source, row, sendReply, metrics, { markSending: async () => true, attempt, refuse: putBackUnsent });
  } catch (error) {
    const accepted = acceptedUnrecordedOf(error);
    if (accepted) {
      const unrecorded = await acceptedButUnrecorded(sql, id, attempt, accepted.providerMessageId, error as Error);
      if (!unrecorded) return 'sent';
      throw unrecorded;
    }
    const forGood = error instanceof PermanentError;
    if ((forGood || error instanceof RetryableError) && !putBackFailed) {
      // Not put back: the reply was no longer this resend's to write (a worker marked it unknown).
      if (!putBack) throw forGood ? new PermanentError(withoutNumbers(error.message)) : new RetryableError(withoutNumbers(error.message), (error as RetryableError).retryAfterMs);
      // The provider's words may quote the customer's number: not on the operator's terminal.
      const reason = `resend ${forGood ? 'refused' : 'failed'}, nothing was sent: ${withoutNumbers(error.message)}`;
      const state = row.was === 'sent' ? 'sent and undelivered as before' : 'unknown as before';
      if (forGood) {
        const then = row.was === 'sent' ? 'reach the customer another way' : `settle it: wagate replies settle --id ${id} --as sent|failed`;
        throw new WagateError('OPERATION_REFUSED', `${reason}; the reply is ${state}: fix what the provider names and resend it, or ${then}`);
      }
      throw new WagateError('RETRYABLE', `${reason}; the reply is ${state} and can be resent later`);
    }
    // Stopped midway: its answer not recorded, so the resend may have gone out; or refused and
    // not put back (the write failed), so nothing went out but the reply is no longer as it was.
    // Unknown either way, where an operator sees it. If even that cannot be written, a worker
    // marks it unknown later (markAbandonedSends).
    const cause = (error as Error).message;
    const reason = refusal ? `${refusal}; it could not be put back as it was: ${cause}` : `${RESEND_STOPPED}: ${cause}`;
    // Refused, the resend sent nothing: the reply keeps the earlier attempt's token, whose receipts may settle it.
    const [back] = await sql`UPDATE outbound_messages SET status = 'unknown', updated_at = now(),
        sending_attempt = CASE WHEN ${refusal !== undefined && row.was === 'unknown'} THEN ${row.was_attempt}::uuid ELSE sending_attempt END,
        last_error = CASE WHEN recipient = ${ERASED} THEN ${refusal ? RESEND_NOT_SENT_ERASED : RESEND_STOPPED} ELSE ${reason} END
      WHERE id = ${id} AND status = 'sending' AND sending_attempt = ${attempt} RETURNING id`.catch(() => []);
    if (!back) {
      throw new WagateError('RETRYABLE', `${withoutNumbers(reason)}; the reply could not be marked unknown either: a running worker marks it so once it has been left longer than a provider call lasts, and wagate replies unknown lists it then`);
    }
    const then = refusal ? 'resend it, or settle it: wagate replies settle' : 'check the provider\'s console before resending it';
    throw new WagateError('RETRYABLE', `${withoutNumbers(reason)}; the reply is unknown now: ${then}`);
  }
}

/**
 * The provider took the resend (the customer has it) and its answer could not be written: the
 * error names the provider's message id and the settle that records it, since a second resend
 * would reach the customer twice and, without the id, its receipts reach no reply. The reply is
 * marked unknown with the id in its last_error, for `wagate replies unknown`; if even that
 * fails, a worker marks it unknown later (markAbandonedSends), and only this error has the id.
 * Null when the send was recorded after all (a settle whose commit landed, its answer lost).
 */
async function acceptedButUnrecorded(sql: Sql, id: string, attempt: string, providerMessageId: string, error: Error): Promise<WagateError | null> {
  const settle = `wagate replies settle --id ${id} --as sent --provider-id ${providerMessageId}`;
  const note = `${ACCEPTED_UNRECORDED} ${providerMessageId} and could not be recorded: do not resend it; ${settle}`;
  const marked = await sql`UPDATE outbound_messages SET status = 'unknown', updated_at = now(), last_error = ${note}
    WHERE id = ${id} AND status = 'sending' AND sending_attempt = ${attempt} RETURNING id`.catch(() => null);
  // Not 'sending' under this resend any more: a try of the settle whose commit landed with its
  // answer lost recorded it after all, or a worker marked it unknown meanwhile.
  if (marked?.length === 0) {
    const [now] = await sql<{ status: string; provider_message_id: string | null }[]>`
      SELECT status, provider_message_id FROM outbound_messages WHERE id = ${id}`.catch(() => []);
    if (now?.status === 'sent' && now.provider_message_id === providerMessageId) return null;
  }
  const when = marked?.length ? 'it is unknown now' : 'once a worker has marked it unknown (wagate replies unknown lists it)';
  return new WagateError('RETRYABLE', `reply ${id} was sent: the provider accepted it as ${providerMessageId}, but that could not be recorded (${error.message}); do not resend it; ${when}, record it: ${settle}`);
}

/** A resend's refusal for a customer erased during the call: the provider's text may quote the number. */
const RESEND_NOT_SENT_ERASED = 'resend not sent (the provider\'s answer is not kept: the customer was erased)';

/** A reply an operator may send again: its outcome unknown, or accepted and then reported undelivered. */
function resendable(sql: Sql) {
  return sql`(o.status = 'unknown' OR (o.status = 'sent' AND o.delivery_status = ANY(${[...UNDELIVERED]}::text[])))`;
}

/** Why a resend's reply is unknown once more: it stopped after its mark, its outcome not recorded. */
const RESEND_STOPPED = 'an operator\'s resend stopped before its outcome was recorded';

/**
 * How long a reply must have been left 'sending' or 'retry' before a worker takes its attempt
 * for abandoned: longer than a provider call and the writes of its answer (about 2 s of tries)
 * with room to spare, 10 s at least.
 */
export const abandonedSendAfterMs = (replyTimeoutMs: number) => Math.max(3 * replyTimeoutMs, replyTimeoutMs + 10_000);

/** Why the workers marked a reply unknown that was left in between with its message finished. */
export const SEND_ABANDONED = 'an attempt stopped before its outcome was recorded, its message finished meanwhile (most likely an operator\'s resend, killed)';

/**
 * Replies left 'sending' or 'retry' with their message finished, which nothing would ever move
 * again: an operator's resend killed, or the database gone before it could put the reply back
 * (a worker's reply in between always has its message queued or processing, and that message's
 * next claim settles it). Marked unknown, so that they show up in `wagate replies unknown` and
 * the unknown-replies alert instead of staying so for good; left alone for longer than any
 * provider call lasts (olderThanMs), so an attempt still under way is not touched. A 'retry'
 * of an erased customer was never sent and never will be: failed. Answers how many became unknown.
 */
export async function markAbandonedSends(sql: Sql, olderThanMs: number): Promise<number> {
  // The mark's time, from the row as it was: a 'sending' row was last written by its mark.
  const rows = await sql<{ id: string; status: string; markedAt: string }[]>`
    UPDATE outbound_messages o
    SET status = CASE WHEN o.status = 'retry' AND o.recipient = ${ERASED} THEN 'failed' ELSE 'unknown' END,
        last_error = CASE WHEN o.status = 'retry' AND o.recipient = ${ERASED} THEN ${NOT_SENT_ERASED} ELSE ${SEND_ABANDONED} END,
        updated_at = now()
    FROM (SELECT id, updated_at FROM outbound_messages
          WHERE status IN ('sending', 'retry') AND updated_at < now() - make_interval(secs => ${olderThanMs / 1000}) FOR UPDATE) before
    WHERE o.id = before.id AND o.status IN ('sending', 'retry') AND o.updated_at < now() - make_interval(secs => ${olderThanMs / 1000})
      AND NOT EXISTS (SELECT 1 FROM webhook_messages m
                      WHERE m.webhook_source = o.webhook_source AND m.message_id = o.inbound_message_id
                        AND wagate_unfinished(m.status))
    RETURNING o.id::text, o.status, before.updated_at::text AS "markedAt"`;
  // One a receipt names was taken by the provider after all: settled sent, not left unknown.
  let settled = 0;
  for (const row of rows.filter((marked) => marked.status === 'unknown')) {
    if (await foldReceiptsOfUnknownReply(sql, row.id, row.markedAt).catch(() => false)) settled += 1;
  }
  return rows.filter((row) => row.status === 'unknown').length - settled;
}

export type Settlement = 'sent' | 'failed';

/** The last_error of a reply an operator settled as failed: a replay of its message leaves it so. */
export const SETTLED_NOT_RESENT = 'settled by an operator: not delivered, not resent';

/** The forms a provider gives its message ids: Meta's wamid, Twilio's message SID. */
const PROVIDER_MESSAGE_ID: Record<string, RegExp> = { whatsapp: /^wamid\.[A-Za-z0-9+/=_.-]{8,250}$/, twilio: /^(SM|MM)[0-9a-f]{32}$/ };

/**
 * Closes an 'unknown' reply without sending, once an operator has found out what happened
 * (the provider's console shows it delivered, or the customer was answered another way).
 * Settled as sent with the provider's message id (the console shows it), the reply takes the
 * receipts stored under that id, and those still to come: without it, they reach no reply,
 * and one that says it failed is never listed as undelivered. Returns the reply's furthest
 * receipt then (null: none yet, or no id given).
 */
export async function settleReply(sql: Sql, id: string, as: Settlement, providerMessageId: string | null = null): Promise<string | null> {
  const note = as === 'sent' ? 'settled by an operator: delivered' : SETTLED_NOT_RESENT;
  const [found] = await sql<{ status: string; source: Source }[]>`SELECT status, webhook_source AS source FROM outbound_messages WHERE id = ${id}`;
  if (found?.status !== 'unknown') throw notUnknown(id, found?.status, 'settled');
  if (providerMessageId !== null) checkProviderMessageId(id, found.source, as, providerMessageId);
  const [row] = await transaction(sql, async (tx) => {
    // Two settles of one id at once would each find no other reply with it (no index makes
    // provider ids unique): the second waits here, and its check, a statement that starts after
    // the first's commit, then sees the first.
    if (providerMessageId !== null) await tx`SELECT pg_advisory_xact_lock(hashtext(${`wagate.provider-message-id:${found.source}:${providerMessageId}`}))`;
    return tx<{ source: Source }[]>`
      UPDATE outbound_messages o SET status = ${as}, last_error = ${note}, updated_at = now(),
        provider_message_id = coalesce(${providerMessageId}::text, o.provider_message_id)
      WHERE o.id = ${id} AND o.status = 'unknown'
        AND NOT EXISTS (SELECT 1 FROM outbound_messages x
                        WHERE x.webhook_source = o.webhook_source AND x.provider_message_id = ${providerMessageId}::text AND x.id <> o.id)
      RETURNING o.webhook_source AS source`;
  });
  if (!row) {
    const [now] = await sql<{ status: string }[]>`SELECT status FROM outbound_messages WHERE id = ${id}`;
    if (now?.status !== 'unknown') throw notUnknown(id, now?.status, 'settled');
    const [other] = await sql<{ id: string }[]>`
      SELECT id::text FROM outbound_messages WHERE webhook_source = ${found.source} AND provider_message_id = ${providerMessageId} AND id <> ${id} LIMIT 1`;
    throw new WagateError('OPERATION_REFUSED', `provider message id ${providerMessageId} belongs to reply ${other?.id ?? 'another'} already; check the id in the provider's console (nothing was changed)`);
  }
  if (providerMessageId === null) return null;
  // After the commit, as every fold: a receipt committing meanwhile folds itself in. The reply is
  // settled whatever the fold does; cleanup's receipt repair folds in what a failed fold left.
  await foldReceipts(sql, [{ source: row.source, providerMessageId }]).catch((error: Error) => {
    throw new WagateError('RETRYABLE', `reply ${id} is settled as sent, as provider message ${providerMessageId}, but its stored receipts could not be read into it (${error.message}); wagate cleanup folds in the receipts of the last three days`);
  });
  const [settled] = await sql<{ delivery_status: string | null }[]>`SELECT delivery_status FROM outbound_messages WHERE id = ${id}`;
  return settled?.delivery_status ?? null;
}

function checkProviderMessageId(id: string, source: string, as: Settlement, providerMessageId: string): void {
  if (as !== 'sent') throw new WagateError('OPERATION_REFUSED', `reply ${id}: a provider message id goes with --as sent only (a reply settled as failed was not sent)`);
  const form = PROVIDER_MESSAGE_ID[source];
  if (form && !form.test(providerMessageId)) {
    const expected = source === 'whatsapp' ? 'Meta\'s wamid.… id' : 'Twilio\'s message SID (SM or MM and 32 hex digits)';
    throw new WagateError('OPERATION_REFUSED', `reply ${id} went out through ${source}, whose message ids are ${expected}; ${providerMessageId} is not one (nothing was changed)`);
  }
}

/** Why a reply could not be resent or settled: there is none with that id, or its outcome is known. */
function notUnknown(id: string, status: string | undefined, what: 'resent' | 'settled'): WagateError {
  const lists = what === 'resent' ? 'wagate replies unknown and wagate replies undelivered list' : 'wagate replies unknown lists';
  if (status === undefined) return new WagateError('OPERATION_REFUSED', `there is no reply ${id}: ${lists} the ones that can be ${what}`);
  const which = what === 'resent' ? 'unknown replies and undelivered ones' : 'unknown replies';
  return new WagateError('OPERATION_REFUSED', `reply ${id} is ${status}, not unknown; only ${which} can be ${what}`);
}

/** Replies whose outcome is unknown, per provider: what the worker exports as a gauge. */
export async function countUnknownReplies(sql: Sql): Promise<Record<'whatsapp' | 'twilio', number>> {
  const rows = await sql<{ source: 'whatsapp' | 'twilio'; count: number }[]>`
    SELECT webhook_source AS source, count(*)::integer AS count FROM outbound_messages WHERE status = 'unknown' GROUP BY 1`;
  const counts = { whatsapp: 0, twilio: 0 };
  for (const row of rows) counts[row.source] = row.count;
  return counts;
}
