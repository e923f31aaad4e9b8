import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import { context, trace } from '@opentelemetry/api';
import type { Sql } from '../db/client';
import { failpoint } from '../failpoints';
import { contextFromTraceparent, withSpan } from '../telemetry/spans';
import { ATTEMPT_HEADER, DEAD_AT_HEADER, LAST_ERROR_HEADER, NOT_BEFORE_HEADER, withoutBrokerHeaders } from '../queue/headers';
import type { QueueMessage } from '../queue/message';
import type { Publisher } from '../queue/publisher';
import { shardOf, type Topology } from '../queue/topology';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { PermanentError, RetryableError, WagateError } from '../errors';
import { describe, isDatabaseDown, numberHeader, parseDelivery, safely } from './delivery';
import type { ProcessOutcome } from './process-message';
import { planRetry, planWait, tierToWaitOut } from './retry-plan';

/** How long a message waits when the database is unavailable, before it is tried again. */
const DATABASE_WAIT_MS = 30_000;

export interface ConsumerDeps {
  topology: Topology;
  prefetch: number;
  publisher: Publisher;
  sql: Sql;
  log: Logger;
  metrics: Metrics;
  handle(message: QueueMessage): Promise<ProcessOutcome>;
}

export interface WorkerConsumer {
  /** Takes a fresh channel on each (re)connect; shards are subscribed one by one (subscribe). */
  attach(channel: ConfirmChannel): Promise<void>;
  /** True while a broker channel is attached. */
  hasChannel(): boolean;
  /** Starts consuming a shard on the attached channel; false without one. */
  subscribe(shard: number): Promise<boolean>;
  /** True while the shard has a consumer on the attached channel. */
  isSubscribed(shard: number): boolean;
  /**
   * Cancels the shard's consumer, then waits until every message of it in hand is finished
   * (acked or handed on), so that nothing is requeued and no delivery count rises.
   */
  release(shard: number): Promise<void>;
  /** Stops taking deliveries and waits for the ones in hand to finish. */
  stop(): Promise<void>;
}

/**
 * Consumes the shard queues. Messages of one sender are chained, so they never run
 * concurrently and keep their order; other senders run side by side up to the prefetch.
 * A failure is published to its next retry tier (or the dead-letter queue) with a
 * confirm, and only then acked, so no hand-over can lose a message.
 */
export function createWorkerConsumer(deps: ConsumerDeps): WorkerConsumer {
  const chains = new Map<string, Promise<void>>();
  /** Messages in hand per shard, so that a shard can be released once its own are finished. */
  const inHand = new Map<number, Set<Promise<void>>>();
  let attached: { channel: ConfirmChannel; tags: Map<number, string> } | null = null;
  // Once stopping, a reconnect must not start consuming again.
  let stopped = false;

  function track(shard: number, work: Promise<void>): void {
    const set = inHand.get(shard) ?? new Set();
    inHand.set(shard, set);
    set.add(work);
    void work.finally(() => set.delete(work));
  }

  function onDelivery(channel: ConfirmChannel, shard: number, delivery: ConsumeMessage): void {
    const payload = parseDelivery(delivery);
    if (typeof payload === 'string') {
      track(shard, deadLetter(channel, delivery, null, payload).catch((error: Error) => {
        deps.log.error({ err: error.message }, 'could not dead-letter an unreadable message; it will be redelivered');
        safely(() => channel.nack(delivery, false, true));
      }));
      return;
    }
    const home = shardOf(payload.senderKey, deps.topology.shards.length);
    if (home !== shard) {
      track(shard, forward(channel, delivery, home));
      return;
    }
    const key = payload.senderKey;
    const next = (chains.get(key) ?? Promise.resolve()).then(() => handleOne(channel, delivery, payload));
    chains.set(key, next);
    track(shard, next);
    void next.finally(() => {
      if (chains.get(key) === next) chains.delete(key);
    });
  }

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

  async function handleOne(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage): Promise<void> {
    // Deliveries of a channel that has closed were requeued by the broker, and may already be
    // with the worker that took the shard over: starting them here would run a sender twice.
    if (attached?.channel !== channel) return;
    const waitTier = tierToWaitOut(deps.topology, numberHeader(delivery, NOT_BEFORE_HEADER), Date.now());
    if (waitTier !== null) return waitOut(channel, delivery, payload, waitTier);
    const started = performance.now();
    let outcome: ProcessOutcome;
    try {
      const deliveries = Number(delivery.properties.headers?.['x-delivery-count'] ?? 0);
      // The broker's delivery limit would drop the message into the DLQ without a reason and
      // leave its record 'processing'; take it out ourselves one delivery earlier.
      if (deliveries >= deps.topology.deliveryLimit - 1) {
        throw new PermanentError(`delivered ${deliveries + 1} times without finishing (a consumer crashed or lost its connection each time)`);
      }
      // Continue the webhook's trace: the amqplib instrumentation's consume span when tracing
      // runs, otherwise the traceparent header the ingest wrote.
      const parent = trace.getSpan(context.active()) ? context.active() : contextFromTraceparent(delivery.properties.headers?.traceparent);
      outcome = await withSpan('wagate.process', { 'wagate.source': payload.source, 'wagate.type': payload.type }, () => deps.handle(payload), parent);
    } catch (error) {
      await routeFailure(channel, delivery, payload, error).catch((routeError: Error) => {
        // The broker redelivers an unacked message; processing is idempotent.
        deps.log.error({ err: routeError.message, messageId: payload.messageId }, 'could not hand a failed message on; it will be redelivered');
        safely(() => channel.nack(delivery, false, true));
      });
      return;
    } finally {
      deps.metrics.workerDuration.observe((performance.now() - started) / 1000);
    }
    deps.metrics.workerMessages.inc({ outcome });
    await failpoint('worker.before-ack');
    // The work is done and recorded; an ack lost with the channel only means a redelivery,
    // which the claim skips. It is not a processing failure to retry.
    safely(() => channel.ack(delivery));
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

  async function settled(shard: number): Promise<void> {
    for (let set = inHand.get(shard); set && set.size > 0; set = inHand.get(shard)) await Promise.allSettled([...set]);
  }

  return {
    async attach(channel) {
      if (stopped) return;
      await channel.prefetch(deps.prefetch);
      attached = { channel, tags: new Map() };
      channel.once('close', () => {
        if (attached?.channel === channel) attached = null;
      });
    },
    hasChannel: () => attached !== null,
    isSubscribed: (shard) => attached?.tags.has(shard) ?? false,
    async subscribe(shard) {
      const current = attached;
      if (stopped || !current) return false;
      if (current.tags.has(shard)) return true;
      // Recorded before the answer: deliveries can arrive before consume() resolves.
      current.tags.set(shard, '');
      try {
        const queue = deps.topology.shards[shard]!.queue;
        const { consumerTag } = await current.channel.consume(queue, (delivery) => delivery && onDelivery(current.channel, shard, delivery));
        if (current.tags.get(shard) === '') current.tags.set(shard, consumerTag);
        // Released while subscribing: this consumer must not stay.
        else await current.channel.cancel(consumerTag).catch(() => undefined);
        return attached === current && current.tags.get(shard) === consumerTag;
      } catch {
        current.tags.delete(shard);
        return false;
      }
    },
    async release(shard) {
      const current = attached;
      const tag = current?.tags.get(shard);
      if (current && tag !== undefined) {
        current.tags.delete(shard);
        if (tag) await current.channel.cancel(tag).catch(() => undefined);
      }
      await settled(shard);
    },
    async stop() {
      stopped = true;
      const current = attached;
      attached = null;
      if (current) for (const tag of current.tags.values()) if (tag) await current.channel.cancel(tag).catch(() => undefined);
      while (chains.size > 0) await Promise.allSettled([...chains.values()]);
      for (const shard of inHand.keys()) await settled(shard);
    },
  };
}
