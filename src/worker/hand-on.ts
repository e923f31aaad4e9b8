import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Sql } from '../db/client';
import { PermanentError, RetryableError, WagateError } from '../errors';
import { ATTEMPT_HEADER, DEAD_AT_HEADER, LAST_ERROR_HEADER, NOT_BEFORE_HEADER, withoutBrokerHeaders } from '../queue/headers';
import type { QueueMessage } from '../queue/message';
import type { Publisher } from '../queue/publisher';
import type { Topology } from '../queue/topology';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { describe, isDatabaseDown, numberHeader, safely } from './delivery';
import { planRetry, planWait } from './retry-plan';

/** How long a message waits when the database is unavailable, before it is tried again. */
const DATABASE_WAIT_MS = 30_000;

export interface HandOnDeps {
  topology: Topology;
  publisher: Publisher;
  sql: Sql;
  log: Logger;
  metrics: Metrics;
}

/** Where a delivery goes when it is not processed here and now: each is published with a confirm, then acked. */
export interface HandOn {
  /** To its sender's shard, when it arrived on another one. */
  forward(channel: ConfirmChannel, delivery: ConsumeMessage, home: number): Promise<void>;
  /** A failed try: to its next retry tier, or the dead-letter queue once the tiers are used up. */
  routeFailure(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage, error: unknown): Promise<void>;
  /** Back to a retry tier, without a try, until its not-before time. */
  waitOut(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage, tier: number): Promise<void>;
  /** To the dead-letter queue, with the reason. */
  deadLetter(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage | null, reason: string): Promise<void>;
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
      await publishOrThrow(deps.topology.exchange, delivery, {}, deps.topology.shards[home]!.routingKey);
      safely(() => channel.ack(delivery));
    } catch (error) {
      deps.log.error({ err: (error as Error).message, messageId: delivery.properties.messageId }, 'could not forward a message to its shard; it will be redelivered');
      safely(() => channel.nack(delivery, false, true));
    }
  }

  async function routeFailure(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage, error: unknown): Promise<void> {
    const reason = describe(error);
    if (error instanceof PermanentError) return deadLetter(channel, delivery, payload, reason);
    const retryAfterMs = error instanceof RetryableError ? error.retryAfterMs : undefined;
    const attemptSoFar = numberHeader(delivery, ATTEMPT_HEADER) ?? 0;
    const plan = isDatabaseDown(error)
      ? planWait(deps.topology, attemptSoFar, DATABASE_WAIT_MS)
      : planRetry(deps.topology, attemptSoFar, retryAfterMs, Date.now());
    if (plan.kind === 'exhausted') return deadLetter(channel, delivery, payload, `retries exhausted: ${reason}`);
    const { tier, attempt, notBefore } = plan;
    await publishOrThrow(deps.topology.retryTiers[tier]!.exchange, delivery, {
      [ATTEMPT_HEADER]: attempt,
      [LAST_ERROR_HEADER]: reason,
      ...(notBefore === undefined ? {} : { [NOT_BEFORE_HEADER]: notBefore }),
    });
    await deps.sql`
      UPDATE webhook_messages SET status = 'queued', last_error = ${reason}, updated_at = now()
      WHERE webhook_source = ${payload.source} AND message_id = ${payload.messageId} AND status = 'processing'`.catch(recordLag(payload, 'queued'));
    deps.metrics.workerMessages.inc({ outcome: 'retried' });
    deps.log.warn({ messageId: payload.messageId, attempt, delayMs: deps.topology.retryTiers[tier]!.delayMs, notBefore, err: reason }, 'message will be retried');
    // Handed over and confirmed: a failed ack means a redelivery the claim skips, not a second hand-over.
    safely(() => channel.ack(delivery));
  }

  /** Back from a tier before the provider's Retry-After has passed: wait again, without a try. */
  async function waitOut(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage, tier: number): Promise<void> {
    try {
      await publishOrThrow(deps.topology.retryTiers[tier]!.exchange, delivery, {});
      safely(() => channel.ack(delivery));
      // Touched, so that a message waiting out a long Retry-After never looks stuck.
      await deps.sql`UPDATE webhook_messages SET updated_at = now()
                     WHERE webhook_source = ${payload.source} AND message_id = ${payload.messageId} AND status = 'queued'`.catch(
        recordLag(payload, 'queued'),
      );
    } catch (error) {
      deps.log.error({ err: (error as Error).message, messageId: delivery.properties.messageId }, 'could not park a message until its Retry-After; it will be redelivered');
      safely(() => channel.nack(delivery, false, true));
    }
  }

  async function deadLetter(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage | null, reason: string): Promise<void> {
    await publishOrThrow(deps.topology.deadExchange, delivery, {
      [LAST_ERROR_HEADER]: reason,
      [DEAD_AT_HEADER]: new Date().toISOString(),
    }, deps.topology.deadRoutingKey);
    if (payload) {
      await deps.sql`
        UPDATE webhook_messages SET status = 'dead', last_error = ${reason}, updated_at = now()
        WHERE webhook_source = ${payload.source} AND message_id = ${payload.messageId} AND status IN ('queued', 'processing')`.catch(recordLag(payload, 'dead'));
    }
    deps.metrics.workerMessages.inc({ outcome: 'dead_lettered' });
    deps.log.error({ messageId: payload?.messageId, err: reason }, 'message dead-lettered');
    safely(() => channel.ack(delivery));
  }

  /**
   * The message itself is already safe in its tier or the dead-letter queue; only its record
   * lags behind ('processing'). A retry's next claim, or a DLQ replay, takes it from there.
   */
  function recordLag(payload: QueueMessage, status: string) {
    return (error: Error) =>
      deps.log.warn({ err: error.message, messageId: payload.messageId, status }, 'could not update the message record after handing the message on');
  }

  async function publishOrThrow(exchange: string, delivery: ConsumeMessage, headers: Record<string, string | number>, routingKey = delivery.fields.routingKey): Promise<void> {
    const original = withoutBrokerHeaders(delivery.properties.headers);
    const [ok] = await deps.publisher.publishAll(exchange, [
      {
        messageId: String(delivery.properties.messageId ?? ''),
        routingKey,
        body: delivery.content,
        traceparent: String(original.traceparent ?? ''),
        headers: { ...original, 'x-wagate-routing-key': delivery.fields.routingKey, ...headers },
      },
    ]);
    if (!ok) {
      deps.metrics.publishFailures.inc();
      throw new WagateError('BROKER_UNAVAILABLE', `the broker did not confirm the hand-over to ${exchange}`);
    }
  }

  return { forward, routeFailure, waitOut, deadLetter };
}
