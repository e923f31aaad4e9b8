import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import { context, trace } from '@opentelemetry/api';
import { failpoint } from '../failpoints';
import { contextFromTraceparent, withSpan } from '../telemetry/spans';
import { NOT_BEFORE_HEADER } from '../queue/headers';
import type { QueueMessage } from '../queue/message';
import { shardOf } from '../queue/topology';
import { PermanentError } from '../errors';
import { numberHeader, parseDelivery, safely } from './delivery';
import { createHandOn, type HandOnDeps } from './hand-on';
import type { ProcessOutcome } from './process-message';
import { tierToWaitOut } from './retry-plan';

export interface ConsumerDeps extends HandOnDeps {
  handle(message: QueueMessage): Promise<ProcessOutcome>;
}

export interface WorkerConsumer {
  /** Takes a fresh channel on each (re)connect; shards are subscribed one by one (subscribe). */
  attach(channel: ConfirmChannel): Promise<void>;
  /** True while a broker channel is attached. */
  hasChannel(): boolean;
  /** Starts consuming a shard on the attached channel, holding up to `prefetch` of its messages; false without a channel. */
  subscribe(shard: number, prefetch: number): Promise<boolean>;
  /** True while the shard has a consumer on the attached channel. */
  isSubscribed(shard: number): boolean;
  /**
   * Cancels the shard's consumer, then waits until every message of it in hand is finished
   * (acked or handed on), so that nothing is requeued and no delivery count rises.
   */
  release(shard: number): Promise<void>;
  /**
   * Lets go of a shard that another worker took over while this one still consumed it. The
   * new owner's consumer waits behind this one (the queue has a single active consumer) and
   * would get the next messages the moment this one is cancelled, while this worker still
   * finished older messages of the same senders. So nothing more starts on the channel, the
   * work under way is finished, and then the channel is closed: the broker returns every
   * message not started to the front of its queue, in order, for the new owner. The other
   * shards' consumers go with the channel and start again on the next one.
   */
  relinquish(shard: number): Promise<void>;
  /** Stops taking deliveries and waits for the ones in hand to finish. */
  stop(): Promise<void>;
}

/**
 * Consumes the shard queues. Messages of one sender are chained, so they never run
 * concurrently and keep their order; other senders run side by side up to each shard's prefetch.
 * A failure is published to its next retry tier (or the dead-letter queue) with a
 * confirm, and only then acked, so no hand-over can lose a message.
 */
export function createWorkerConsumer(deps: ConsumerDeps): WorkerConsumer {
  let attached: { channel: ConfirmChannel; tags: Map<number, string>; closed: Promise<void> } | null = null;
  /** A channel on which nothing more may start, since it is about to be closed (relinquish). */
  let fenced: ConfirmChannel | null = null;
  /** Deliveries being processed or handed on (as opposed to waiting in their sender's chain), with their channel. */
  const underWay = new Map<Promise<void>, ConfirmChannel>();
  const { forward, routeFailure, waitOut, deadLetter } = createHandOn({ ...deps, isHeld: (channel) => attached?.channel === channel });
  const chains = new Map<string, Promise<void>>();
  /** Messages in hand per shard, so that a shard can be released once its own are finished. */
  const inHand = new Map<number, Set<Promise<void>>>();
  // Once stopping, a reconnect must not start consuming again.
  let stopped = false;

  function track(shard: number, work: Promise<void>): void {
    const set = inHand.get(shard) ?? new Set();
    inHand.set(shard, set);
    set.add(work);
    void work.finally(() => set.delete(work));
  }

  /**
   * Starts work on a delivery. Deliveries of a channel that has closed were requeued by the
   * broker, and may already be with the worker that took the shard over: starting them here
   * would run a sender twice. Those of a fenced channel are left unacked for its close to return.
   */
  function begin(channel: ConfirmChannel, work: () => Promise<void>): Promise<void> {
    if (attached?.channel !== channel || fenced === channel) return Promise.resolve();
    const running = work();
    underWay.set(running, channel);
    void running.finally(() => underWay.delete(running)).catch(() => undefined);
    return running;
  }

  function onDelivery(channel: ConfirmChannel, shard: number, delivery: ConsumeMessage): void {
    const payload = parseDelivery(delivery);
    if (typeof payload === 'string') {
      track(shard, begin(channel, () => deadLetter(channel, delivery, null, payload).catch((error: Error) => {
        deps.log.error({ err: error.message }, 'could not dead-letter an unreadable message; it will be redelivered');
        safely(() => channel.nack(delivery, false, true));
      })));
      return;
    }
    const home = shardOf(payload.senderKey, deps.topology.shards.length);
    if (home !== shard) {
      track(shard, begin(channel, () => forward(channel, delivery, home)));
      return;
    }
    const key = payload.senderKey;
    const next = (chains.get(key) ?? Promise.resolve()).then(() => begin(channel, () => handleOne(channel, delivery, payload)));
    chains.set(key, next);
    track(shard, next);
    void next.finally(() => {
      if (chains.get(key) === next) chains.delete(key);
    });
  }

  async function handleOne(channel: ConfirmChannel, delivery: ConsumeMessage, payload: QueueMessage): Promise<void> {
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

  /**
   * Waits until every message of the shard in hand is finished. Those left unacked on a
   * fenced channel are finished only once its close has returned them to their queue: a
   * release recorded before that would let the next owner take later messages first.
   */
  async function settled(shard: number, current = attached): Promise<void> {
    for (let set = inHand.get(shard); set && set.size > 0; set = inHand.get(shard)) await Promise.allSettled([...set]);
    if (current && fenced === current.channel) await current.closed;
  }

  return {
    async attach(channel) {
      if (stopped) return;
      const closed = new Promise<void>((resolve) => channel.once('close', () => resolve()));
      attached = { channel, tags: new Map(), closed };
      void closed.then(() => {
        if (attached?.channel === channel) attached = null;
      });
    },
    hasChannel: () => attached !== null,
    isSubscribed: (shard) => attached?.tags.has(shard) ?? false,
    async subscribe(shard, prefetch) {
      const current = attached;
      // A fenced channel is about to close: a consumer started on it would only have its deliveries skipped.
      if (stopped || !current || fenced === current.channel) return false;
      if (current.tags.has(shard)) return true;
      // Recorded before the answer: deliveries can arrive before consume() resolves.
      current.tags.set(shard, '');
      try {
        const queue = deps.topology.shards[shard]!.queue;
        // A per-consumer prefetch applies to the consumers started after it: both go out
        // together, so that no other shard's subscribe can come between them.
        const [, { consumerTag }] = await Promise.all([
          current.channel.prefetch(prefetch),
          current.channel.consume(queue, (delivery) => delivery && onDelivery(current.channel, shard, delivery)),
        ]);
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
      await settled(shard, current);
    },
    async relinquish(shard) {
      const current = attached;
      if (current?.tags.has(shard)) {
        fenced = current.channel;
        // Nothing new starts on the fenced channel, so this ends; a channel lost meanwhile has
        // already given everything back, and there is nothing left to wait for.
        const onChannel = () => [...underWay].flatMap(([work, channel]) => (channel === current.channel ? [work] : []));
        for (let work = onChannel(); work.length > 0; work = onChannel()) {
          if (await Promise.race([Promise.allSettled(work).then(() => false), current.closed.then(() => true)])) break;
        }
        deps.log.warn({ shard }, 'closing the broker channel so that the messages in hand go back, in order, to the worker that took the shard over');
        // close() settles only on the broker's answer, which a connection lost meanwhile never gives; the close event comes either way.
        await Promise.race([current.channel.close().catch(() => undefined), current.closed]);
      }
      await settled(shard, current);
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
