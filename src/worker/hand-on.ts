import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Sql } from '../db/client';
import { isWagateError, PermanentError, RetryableError, WagateError } from '../errors';
import { failpoint } from '../failpoints';
import { ATTEMPT_HEADER, DEAD_AT_HEADER, LAST_ERROR_HEADER, NOT_BEFORE_HEADER, withoutBrokerHeaders } from '../queue/headers';
import type { QueueMessage } from '../queue/message';
import type { Publisher } from '../queue/publisher';
import { routingKeyFor, type Topology } from '../queue/topology';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { acceptedUnrecordedOf, ORPHANED_SEND } from '../orders/deliver-reply';
import { ERASED } from '../orders/erasure';
import { writeProviderAnswer } from '../orders/write-provider-answer';
import { failUnsentErasedReply } from '../orders/mark-sending';
import { describe, isDatabaseDown, numberHeader, safely } from './delivery';
import { planRetry, planWait } from './retry-plan';
import { unsentAttemptsHeader, unsentAttemptsOf, type UnsentAttempts } from './unsent-attempts';
import { withoutNumbers } from '../telemetry/without-numbers';
import { foldReceiptsOfUnknownReply } from '../ledger/fold-receipts';

/** Pauses between publishes of a hand-over the broker refused, doubling up to the most. */
const HAND_OVER_RETRY_MIN_MS = 250;
const HAND_OVER_RETRY_MAX_MS = 5_000;
/** How often a hand-over waiting for a late confirm checks that its delivery is still held. */
const HELD_CHECK_MS = 500;

/** How long a message waits when the database is unavailable, before it is tried again. */
const DATABASE_WAIT_MS = 30_000;

export interface HandOnDeps {
  topology: Topology;
  publisher: Publisher;
  /**
   * Whether deliveries of this channel are still this worker's to hold; a hand-over holds them
   * only so long. False once the channel closed, and once a release or a stop that began on it
   * has waited its limit (the consumer's holdLimitMs).
   */
  isHeld?(channel: ConfirmChannel): boolean;
  sql: Sql;
  log: Logger;
  metrics: Metrics;
  /**
   * Declares again the queue behind a hand-over's exchange (declareHandOverTarget), on a
   * channel of its own; false when that exchange's queues are not declared so.
   */
  redeclare?(exchange: string): Promise<boolean>;
  /**
   * Drops a message's letters from the dead-letter queue, on a channel of its own
   * (dropDeadLetters): for a customer erased while their message was being dead-lettered.
   */
  dropDeadLetter?(message: QueueMessage): Promise<number>;
}

/** Where a delivery goes when it is not processed here and now: each is published with a confirm, then acked. */
export interface HandOn {
  /** To its sender's shard, when it arrived on another one. */
  forward(channel: ConfirmChannel, delivery: ConsumeMessage, home: number): Promise<void>;
  /**
   * A failed try: to its next retry tier, or the dead-letter queue once the tiers are used up.
   * Either copy carries the tokens of the attempts that marked its reply and called nothing.
   */
  routeFailure(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage, error: unknown, unsent?: UnsentAttempts): Promise<void>;
  /** Back to a retry tier, without a try, until its not-before time. */
  waitOut(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage, tier: number): Promise<void>;
  /** To the dead-letter queue, with the reason. */
  deadLetter(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage | null, reason: string, unsent?: UnsentAttempts): Promise<void>;
}

/**
 * Hands deliveries on to another queue. The message is safe in its new queue (confirmed)
 * before it is acked here, so that no hand-over, crash or reconnect can lose it.
 */
export function createHandOn(deps: HandOnDeps): HandOn {
  /**
   * A message on a shard its sender does not belong to: published by a process with the old
   * count during a reshard, or back from a retry tier with its old routing key. It goes to its
   * sender's shard (with a confirm, then the ack) rather than being processed here, beside
   * that shard's consumer.
   */
  async function forward(channel: ConfirmChannel, delivery: ConsumeMessage, home: number): Promise<void> {
    try {
      await publishOrThrow(channel, deps.topology.exchange, delivery, {}, deps.topology.shards[home]!.routingKey);
      safely(() => channel.ack(delivery));
    } catch (error) {
      deps.log.error({ err: (error as Error).message, messageId: delivery.properties.messageId }, 'could not forward a message to its shard; it will be redelivered');
      safely(() => channel.nack(delivery, false, true));
    }
  }

  /**
   * The key a tier's copy goes back to the work exchange under: its sender's shard, not the
   * key it came with, which a message moved in by hand (a shovel, the management UI's "Move
   * messages") has as the queue's name, bound to nothing, so the broker would drop it there.
   */
  function homeKey(payload: QueueMessage): string {
    return routingKeyFor(deps.topology, payload.senderKey);
  }

  async function routeFailure(
    channel: ConfirmChannel,
    delivery: ConsumeMessage,
    payload: QueueMessage,
    error: unknown,
    unsent = unsentAttemptsOf(delivery),
  ): Promise<void> {
    const reason = describe(error);
    const accepted = acceptedUnrecordedOf(error);
    // Named here in full: the reason below has its long digit runs masked, and a reply id or a
    // Twilio SID can hold some, while the settle that saves a second send needs both.
    if (accepted) {
      deps.log.error({ source: payload.source, messageId: payload.messageId, ...accepted },
        `the provider accepted a reply that could not be recorded as sent; once it is marked unknown, record it: wagate replies settle --id ${accepted.replyId} --as sent --provider-id ${accepted.providerMessageId}`);
    }
    if (error instanceof PermanentError) return deadLetter(channel, delivery, payload, reason, unsent);
    const retryAfterMs = error instanceof RetryableError ? error.retryAfterMs : undefined;
    const attemptSoFar = numberHeader(delivery, ATTEMPT_HEADER) ?? 0;
    const plan = isDatabaseDown(error)
      ? planWait(deps.topology, attemptSoFar, DATABASE_WAIT_MS)
      : planRetry(deps.topology, attemptSoFar, retryAfterMs, Date.now());
    if (plan.kind === 'exhausted') return deadLetter(channel, delivery, payload, `retries exhausted: ${reason}`, unsent);
    const { tier, attempt, notBefore } = plan;
    await publishOrThrow(channel, deps.topology.retryTiers[tier]!.exchange, delivery, {
      ...unsentAttemptsHeader(unsent),
      [ATTEMPT_HEADER]: attempt,
      // Shown by `dlq list` and the management UI, beyond erase's reach: without the numbers a provider's text may quote.
      [LAST_ERROR_HEADER]: withoutNumbers(reason),
      ...(notBefore === undefined ? {} : { [NOT_BEFORE_HEADER]: notBefore }),
    }, homeKey(payload));
    const waitEnds = waitingUntil(deps.topology.retryTiers[tier]!.delayMs, notBefore);
    await deps.sql`
      UPDATE webhook_messages SET status = 'queued', last_error = ${reason}, updated_at = now(), retry_attempt = ${attempt},
        waiting_until = ${waitEnds}, retry_attempt_until = ${waitEnds}
      WHERE webhook_source = ${payload.source} AND message_id = ${payload.messageId} AND status = 'processing'`.catch(recordLag(payload, 'queued'));
    deps.metrics.workerMessages.inc({ outcome: 'retried' });
    deps.log.warn(
      { source: payload.source, messageId: payload.messageId, attempt, delayMs: deps.topology.retryTiers[tier]!.delayMs, notBefore, err: withoutNumbers(reason) },
      'message will be retried',
    );
    // Handed over and confirmed: a failed ack means a redelivery of this try, which the claim
    // skips (the record names the try the tier's copy carries), not a second hand-over.
    await failpoint('worker.before-retry-ack');
    safely(() => channel.ack(delivery));
  }

  /**
   * Back from a tier before the provider's Retry-After has passed: wait again, without a try.
   * A customer erased meanwhile has the copy dropped here, not parked again: a Retry-After
   * can keep it cycling through the tiers for up to a day.
   */
  async function waitOut(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage, tier: number): Promise<void> {
    if ((await recordBeforeDeadLetter(payload))?.status === ERASED) {
      await failUnsentErasedReply(deps.sql, payload.source, payload.messageId, unsentAttemptsOf(delivery).tokens).catch(recordLag(payload, ERASED));
      deps.metrics.workerMessages.inc({ outcome: 'skipped' });
      deps.log.info({ messageId: payload.messageId }, 'dropped while waiting out a Retry-After: the customer was erased');
      safely(() => channel.ack(delivery));
      return;
    }
    try {
      await publishOrThrow(channel, deps.topology.retryTiers[tier]!.exchange, delivery, {}, homeKey(payload));
      safely(() => channel.ack(delivery));
      // Touched, so that a message waiting out a long Retry-After never looks stuck: a record
      // still 'processing' too, whose write of 'queued' after the hand-over to its tier failed
      // (its updated_at would stand still, and after the longest tier and an hour it counted as
      // stuck, and requeue-stuck sent it before the provider's time).
      const notBefore = numberHeader(delivery, NOT_BEFORE_HEADER);
      // The copy keeps its try, which the record names with the new wait (a record a release
      // before 0.3.6 handed on may hold an earlier life's try).
      const waitEnds = waitingUntil(deps.topology.retryTiers[tier]!.delayMs, notBefore);
      await deps.sql`UPDATE webhook_messages SET updated_at = now(), waiting_until = ${waitEnds},
                       retry_attempt = ${numberHeader(delivery, ATTEMPT_HEADER) ?? 0}, retry_attempt_until = ${waitEnds}
                     WHERE webhook_source = ${payload.source} AND message_id = ${payload.messageId} AND status IN ('queued', 'processing')`.catch(
        recordLag(payload, 'queued'),
      );
    } catch (error) {
      deps.log.error({ err: (error as Error).message, messageId: delivery.properties.messageId }, 'could not park a message until its Retry-After; it will be redelivered');
      safely(() => channel.nack(delivery, false, true));
    }
  }

  async function deadLetter(
    channel: ConfirmChannel,
    delivery: ConsumeMessage,
    payload: QueueMessage | null,
    reason: string,
    unsent = unsentAttemptsOf(delivery),
  ): Promise<void> {
    const before = payload ? await recordBeforeDeadLetter(payload, numberHeader(delivery, ATTEMPT_HEADER) ?? 0) : null;
    if (before?.status === ERASED) {
      await failUnsentErasedReply(deps.sql, payload!.source, payload!.messageId, unsent.tokens).catch(recordLag(payload!, ERASED));
      deps.metrics.workerMessages.inc({ outcome: 'skipped' });
      deps.log.info({ messageId: payload?.messageId }, 'not dead-lettered: the customer was erased while it was processed');
      safely(() => channel.ack(delivery));
      return;
    }
    // A copy of a message already finished, whose acks were lost until the delivery limit
    // (checked before any claim) came: a letter would only raise the dead-letter alert for a
    // message that has its order and reply, and a replay would skip it. So is a copy of one
    // recorded dead already: its letter was confirmed before that record, and a second would
    // make a replay put the message back twice.
    if (before?.status === 'processed' || before?.status === 'unmatched' || before?.status === 'dead') {
      deps.metrics.workerMessages.inc({ outcome: 'skipped' });
      const why = before.status === 'dead'
        ? 'not dead-lettered again: its letter is in the dead-letter queue already (a copy whose ack was lost)'
        : 'not dead-lettered: the message was finished already (a copy whose ack was lost)';
      deps.log.info({ messageId: payload?.messageId, status: before.status }, why);
      safely(() => channel.ack(delivery));
      return;
    }
    // A copy of an earlier try, whose ack was lost after its hand-over to a tier, come to the
    // delivery limit (checked before the claim, which would skip it): the message lives on in
    // the tier's copy, and a letter would kill it with its tries unused and its reply unsent.
    if (before?.superseded) {
      deps.metrics.workerMessages.inc({ outcome: 'skipped' });
      deps.log.info({ messageId: payload?.messageId }, 'not dead-lettered: a later try of the message is in a retry tier (a copy whose ack was lost)');
      safely(() => channel.ack(delivery));
      return;
    }
    await failpoint('worker.before-dead-letter-publish');
    await publishOrThrow(channel, deps.topology.deadExchange, delivery, {
      ...unsentAttemptsHeader(unsent),
      [LAST_ERROR_HEADER]: withoutNumbers(reason),
      [DEAD_AT_HEADER]: new Date().toISOString(),
    }, deps.topology.deadRoutingKey);
    await failpoint('worker.after-dead-letter-publish');
    // Tried again through a passing failure, as a provider's answer is: left 'processing', the
    // record would count as stuck within hours, and its requeue feed the letter back to the
    // workers while it also waits in the dead-letter queue.
    if (payload) {
      const recorded = await writeProviderAnswer(() => recordDead(payload, reason, { version: before?.version ?? null, status: before?.status ?? null }, unsent.tokens))
        .catch((error: Error) => void recordLag(payload, 'dead')(error));
      if (recorded === 'erased') await dropErasedLetter(payload);
    }
    deps.metrics.workerMessages.inc({ outcome: 'dead_lettered' });
    deps.log.error({ source: payload?.source, messageId: payload?.messageId, err: withoutNumbers(reason) }, 'message dead-lettered');
    await failpoint('worker.after-dead-record');
    safely(() => channel.ack(delivery));
  }

  /**
   * The message is dead, and a reply of it still 'sending' is unknown: the attempt that marked
   * it died during the provider call (the delivery limit dead-letters before any claim, which
   * would otherwise have found it), so the customer may have it. Left 'sending', nothing would
   * ever show it to an operator. One still 'pending' or 'retry' was never sent: it fails, and
   * cleanup then clears it like any other; so does one 'sending' under an attempt that called
   * nothing (its mark went unanswered: `unsentAttempts`), which a replay then sends.
   */
  async function recordDead(
    payload: QueueMessage,
    reason: string,
    { version, status }: { version: string | null; status: string | null },
    unsentAttempts: readonly string[],
  ): Promise<'erased' | void> {
    const [row] = await deps.sql<{ dead: number; orphaned: { id: string; markedAt: string }[]; unsent: number; erased: number }[]>`
      WITH dead AS (
        UPDATE webhook_messages SET status = 'dead', last_error = ${reason}, updated_at = now()
        WHERE webhook_source = ${payload.source} AND message_id = ${payload.messageId} AND status IN ('queued', 'processing')
          AND (${version}::text IS NULL OR updated_at::text = ${version})
        RETURNING id),
      -- With the mark's time, from the row as it was: a 'sending' row was last written by its mark.
      orphaned AS (
        UPDATE outbound_messages o SET status = 'unknown', last_error = ${ORPHANED_SEND}, updated_at = now()
        FROM (SELECT id, updated_at FROM outbound_messages
              WHERE webhook_source = ${payload.source} AND inbound_message_id = ${payload.messageId} AND status = 'sending' FOR UPDATE) before
        WHERE o.id = before.id AND o.status = 'sending'
          AND (o.sending_attempt IS NULL OR o.sending_attempt <> ALL(${unsentAttempts}::uuid[]))
          AND EXISTS (SELECT 1 FROM dead)
        RETURNING o.id, before.updated_at::text AS marked_at),
      -- Definitely not sent, and nothing will try again until a replay (which reopens failed
      -- replies): left 'pending' or 'retry', its text and number outlived every retention.
      unsent AS (
        UPDATE outbound_messages SET status = 'failed', last_error = coalesce(last_error, ${reason}), sending_attempt = NULL, updated_at = now()
        WHERE webhook_source = ${payload.source} AND inbound_message_id = ${payload.messageId}
          AND (status IN ('pending', 'retry') OR (status = 'sending' AND sending_attempt = ANY(${unsentAttempts}::uuid[])))
          AND EXISTS (SELECT 1 FROM dead)
        RETURNING id),
      erased AS (
        SELECT 1 FROM webhook_messages
        WHERE webhook_source = ${payload.source} AND message_id = ${payload.messageId} AND status = ${ERASED})
      SELECT (SELECT count(*) FROM dead)::integer AS dead, (SELECT coalesce(jsonb_agg(jsonb_build_object('id', id::text, 'markedAt', marked_at)), '[]') FROM orphaned) AS orphaned, (SELECT count(*) FROM unsent)::integer AS unsent,
        (SELECT count(*) FROM erased)::integer AS erased`;
    if (row!.erased > 0) return 'erased';
    if (row!.dead === 0 && version !== null && (status === 'queued' || status === 'processing')) {
      deps.log.info({ messageId: payload.messageId }, 'the message record changed while its dead letter went out (a dlq replay reopened it); left as the replay made it');
    }
    for (const orphan of row!.orphaned) {
      // A receipt naming the earlier attempt says the provider took it: settled sent, not left unknown.
      if (await foldReceiptsOfUnknownReply(deps.sql, orphan.id, orphan.markedAt).catch(() => false)) {
        deps.metrics.confirmations.inc({ provider: payload.source, result: 'sent' });
        continue;
      }
      deps.metrics.confirmations.inc({ provider: payload.source, result: 'unknown' });
      deps.log.warn({ messageId: payload.messageId }, 'the dead-lettered message\'s reply was left mid-call by an earlier attempt; marked unknown, not sent again');
    }
  }

  /**
   * `wagate erase` ran while the letter went out (a blocked publish, say), after its sweep of
   * the dead-letter queue: left there, the letter would keep the customer's message. If it
   * cannot be dropped now, the log says how to drop it.
   */
  async function dropErasedLetter(payload: QueueMessage): Promise<void> {
    if (!deps.dropDeadLetter) return;
    try {
      const dropped = await deps.dropDeadLetter(payload);
      // None found: another reader (a `dlq list`, an erase) held it taken meanwhile.
      if (dropped === 0) throw new Error('the letter was not in the dead-letter queue when read; another reader may have held it');
      deps.log.info({ messageId: payload.messageId, dropped }, 'the customer was erased while the message was dead-lettered; its dead letter is dropped');
    } catch (error) {
      deps.log.error({ messageId: payload.messageId, err: describe(error) },
        'the customer was erased while the message was dead-lettered, and its dead letter could not be dropped: run wagate erase --phone for that customer again once the broker answers and no other command reads the dead-letter queue');
    }
  }

  /**
   * The record as the dead letter leaves (or a copy is parked again), read before it does. Erased (`wagate erase` during
   * processing): a dead-letter copy would keep the customer's message (and the error, which
   * may quote their number) after the erase swept the queue. Its version, its updated_at:
   * once the letter is in the dead-letter queue a `dlq replay` (or `requeue-stuck`) may reopen
   * the record and publish the message again, and the dead write that follows must not undo
   * that (the replayed copy would be skipped as finished, with no letter left to replay), so it
   * applies only to the version read here. Not the row's xmin: the ledger's count of a
   * provider's duplicate webhook writes the row too, but leaves updated_at, and a duplicate
   * must not leave a dead message 'processing'. Null when Postgres does not answer: the copy is kept then (`erase` run again
   * drops it), and the dead write applies to any record still queued or processing.
   * `superseded`: the message is unfinished and was handed to a retry tier for a later try than
   * the delivery's, by a release that names tries with their wait (a record a 0.3.5 worker
   * handed on, or a replay reset, is never superseded).
   */
  async function recordBeforeDeadLetter(payload: QueueMessage, attempt = 0): Promise<{ status: string; version: string; superseded: boolean } | null> {
    const [row] = await deps.sql<{ status: string; version: string; superseded: boolean }[]>`
      SELECT status, updated_at::text AS version,
             (status IN ('queued', 'processing') AND retry_attempt > ${attempt}
              AND waiting_until = retry_attempt_until) IS TRUE AS superseded
      FROM webhook_messages
      WHERE webhook_source = ${payload.source} AND message_id = ${payload.messageId}`.catch(() => []);
    return row ?? null;
  }

  /**
   * The message itself is already safe in its tier or the dead-letter queue; only its record
   * lags behind ('processing'). A retry's next claim, or a DLQ replay, takes it from there.
   */
  function recordLag(payload: QueueMessage, status: string) {
    return (error: Error) =>
      deps.log.warn({ err: error.message, messageId: payload.messageId, status }, 'could not update the message record after handing the message on');
  }

  /**
   * Publishes the hand-over and returns once the broker confirmed it, holding the delivery
   * meanwhile. Giving the delivery back (nack with requeue) would bring it straight back to be
   * processed again: another provider call at once, whatever Retry-After said, and on the fifth
   * delivery the broker's own dead-lettering, without a reason. So a confirm that is late is
   * waited for (a blocked connection answers once the alarm clears), and a publish that failed
   * is tried again with a growing pause. It throws only when the delivery is no longer held
   * (its channel closed: the broker has requeued it), and then nothing of it is acked here.
   */
  async function publishOrThrow(
    channel: ConfirmChannel,
    exchange: string,
    delivery: ConsumeMessage,
    headers: Record<string, string | number>,
    routingKey: string,
  ): Promise<void> {
    const original = withoutBrokerHeaders(delivery.properties.headers);
    const publication = {
      messageId: String(delivery.properties.messageId ?? ''),
      routingKey,
      body: delivery.content,
      traceparent: String(original.traceparent ?? ''),
      headers: { ...original, 'x-wagate-routing-key': delivery.fields.routingKey, ...headers },
    };
    const held = () => deps.isHeld?.(channel) ?? false;
    for (let attempt = 0; ; attempt += 1) {
      let lateAnswer: (ok: boolean) => void = () => undefined;
      const late = new Promise<boolean>((resolve) => (lateAnswer = resolve));
      const [answer] = await deps.publisher.publishAll(exchange, [publication], (_index, ok) => lateAnswer(ok));
      if (answer === true) return;
      deps.metrics.publishFailures.inc();
      const ok = answer === null ? await answeredWhileHeld(late, held) : false;
      if (ok) return;
      if (!held()) throw new WagateError('BROKER_UNAVAILABLE', `the broker did not confirm the hand-over to ${exchange}`);
      deps.log.warn({ messageId: publication.messageId, exchange, attempt }, 'the hand-over was not confirmed; holding the message and publishing it again');
      // Refused or returned: a tier's queue, or the dead-letter queue, deleted by hand returns
      // every hand-over to it until it is declared again.
      if (answer === false) await redeclareTarget(exchange);
      await pause(Math.min(HAND_OVER_RETRY_MIN_MS * 2 ** attempt, HAND_OVER_RETRY_MAX_MS));
      if (!held()) throw new WagateError('BROKER_UNAVAILABLE', `the broker did not confirm the hand-over to ${exchange}`);
    }
  }

  /** Declarations under way, by exchange: every hand-over held on one waits for the same one. */
  const redeclaring = new Map<string, Promise<void>>();

  function redeclareTarget(exchange: string): Promise<void> {
    const under = redeclaring.get(exchange);
    if (under) return under;
    const work = (async () => {
      try {
        if (await deps.redeclare?.(exchange)) deps.log.info({ exchange }, 'declared the queue behind a hand-over\'s exchange again, in case it was deleted');
      } catch (error) {
        // Declared by hand with other arguments: no retry helps, and the sender waits until someone acts.
        const conflict = isWagateError(error, 'TOPOLOGY_CONFLICT');
        deps.log[conflict ? 'error' : 'warn']({ exchange, err: (error as Error).message }, 'could not declare the queue behind a hand-over\'s exchange again');
      } finally {
        redeclaring.delete(exchange);
      }
    })();
    redeclaring.set(exchange, work);
    return work;
  }

  return { forward, routeFailure, waitOut, deadLetter };
}

/** The late answer of a publish, or false once the delivery is no longer held. */
async function answeredWhileHeld(late: Promise<boolean>, held: () => boolean): Promise<boolean> {
  let answered: boolean | undefined;
  void late.then((ok) => (answered = ok));
  while (answered === undefined && held()) await Promise.race([late, pause(HELD_CHECK_MS)]);
  return answered ?? false;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * When a parked message is next due for a try: the end of its tier's delay, or the provider's
 * Retry-After if later. The autoscaler leaves it out of the backlog until then.
 */
function waitingUntil(delayMs: number, notBefore: number | undefined) {
  const tierEnds = Date.now() + delayMs;
  return new Date(Math.max(tierEnds, notBefore ?? tierEnds));
}
