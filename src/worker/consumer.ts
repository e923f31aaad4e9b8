import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import { context, trace } from '@opentelemetry/api';
import { failpoint } from '../failpoints';
import { contextFromTraceparent, withSpan } from '../telemetry/spans';
import { ATTEMPT_HEADER, NOT_BEFORE_HEADER } from '../queue/headers';
import { amqpMessageId, type QueueMessage } from '../queue/message';
import { declareShardQueue, shardOf } from '../queue/topology';
import { PermanentError } from '../errors';
import { numberHeader, parseDelivery, safely } from './delivery';
import { createHandOn, type HandOnDeps } from './hand-on';
import type { ProcessOutcome } from './process-message';
import { tierToWaitOut } from './retry-plan';
import { createUnsentMemory, type UnsentAttempts } from './unsent-attempts';
import type { LeaseEnd } from './lease-watch';

export interface ConsumerDeps extends HandOnDeps {
  /** `attempt`: the delivery's try (its x-wagate-attempt header; 0 before any retry). */
  handle(message: QueueMessage, unsent: UnsentAttempts, attempt: number): Promise<ProcessOutcome>;
  /**
   * The longest a hand-over goes on holding its delivery, waiting for the broker, once a
   * release, a relinquish or the stop began on its channel (WORKER_DRAIN_TIMEOUT_MS): they wait
   * for it, so a broker blocked for good must not keep them waiting longer than for a message in
   * hand. Then it is given back to its queue. Until then a hand-over holds it for as long as the
   * channel is open: given back, it would come straight back to call the provider again.
   */
  holdLimitMs?: number;
  /** Whether the worker is stopping: a message given back then is the drain's, not a takeover. */
  stopping?(): boolean;
}

/** The hold limit when none is given: WORKER_DRAIN_TIMEOUT_MS's default. */
const DEFAULT_HOLD_LIMIT_MS = 20_000;

/** The consuming connection: each shard's consumer gets a channel of its own on it. */
export interface ConsumingConnection {
  createConfirmChannel(): Promise<ConfirmChannel>;
  once(event: 'close', listener: () => void): unknown;
}

export interface WorkerConsumer {
  /**
   * Takes the connection of each (re)connect; shards are subscribed one by one (subscribe). A
   * connection whose `lost` has aborted closed before it was handed over, and is not taken.
   */
  attach(connection: ConsumingConnection, lost?: AbortSignal): Promise<void>;
  /** True while a broker connection is attached. */
  hasChannel(): boolean;
  /**
   * Starts consuming a shard on a channel of its own, holding up to `prefetch` of its
   * messages; false without a connection.
   */
  subscribe(shard: number, prefetch: number): Promise<boolean>;
  /** True while the shard has a consumer on its channel. */
  isSubscribed(shard: number): boolean;
  /**
   * Cancels the shard's consumer, then waits until every message of it in hand is finished
   * (acked or handed on), so that this worker requeues nothing, and closes its channel. (The
   * broker itself returns the deliveries still on their way when the cancel reached it, each
   * one delivery more: see the README's Hand-over.)
   *
   * Once cancelled, the queue has no consumer, and whoever takes the shard when this worker's
   * lease runs out gets the next messages at once. So when the heartbeats stall meanwhile
   * (`lease.stalled`: cut off from Postgres, say), nothing more starts, and the channel is
   * closed once the work under way is finished, or when the lease is about to end
   * (`lease.ending`) if that comes first: the broker returns the messages not finished to the
   * front of their queue, in order, before anyone else may consume it.
   */
  release(shard: number, lease?: LeaseEnd): Promise<void>;
  /**
   * Lets go of a shard that another worker took over while this one still consumed it. The
   * new owner's consumer waits behind this one (the queue has a single active consumer) and
   * would get the next messages the moment this one is cancelled, while this worker still
   * finished older messages of the same senders. So nothing more starts on the shard's
   * channel, the work under way is finished, and then the channel is closed: the broker
   * returns every message not started to the front of its queue, in order, for the new owner.
   * Each shard has a channel of its own, so the other shards' messages in hand stay where they
   * are: they are neither given back nor counted as delivered once more.
   */
  relinquish(shard: number): Promise<void>;
  /** Stops taking deliveries, waits for the ones in hand to finish, and closes the shards' channels. */
  stop(): Promise<void>;
}

interface ShardChannel {
  channel: ConfirmChannel;
  /** Empty until the broker has answered the consume. */
  tag: string;
  closed: Promise<void>;
}

/**
 * Consumes the shard queues, each on a channel of its own. Messages of one sender are
 * chained, so they never run concurrently and keep their order; other senders run side by
 * side up to each shard's prefetch. A failure is published to its next retry tier (or the
 * dead-letter queue) with a confirm, and only then acked, so no hand-over can lose a message.
 */
export function createWorkerConsumer(deps: ConsumerDeps): WorkerConsumer {
  /** The shards of the attached connection: their channel, or null while it is being opened. */
  let attached: { connection: ConsumingConnection; shards: Map<number, ShardChannel | null> } | null = null;
  /** Open channels: deliveries of any other were given back by the broker when it closed. */
  const open = new Set<ConfirmChannel>();
  /** Channels on which nothing more may start, since they are about to be closed (relinquish). */
  const fenced = new Set<ConfirmChannel>();
  /** The shard channel of each open channel, so that a delivery found no longer ours can close its own. */
  const entryOf = new Map<ConfirmChannel, ShardChannel>();
  /** Deliveries being processed or handed on (as opposed to waiting in their sender's chain), with their channel. */
  const underWay = new Map<Promise<void>, ConfirmChannel>();
  /** When the worker began letting go of each channel (a release, a relinquish, the stop): hand-overs hold their deliveries only so long after. */
  const lettingGoSince = new Map<ConfirmChannel, number>();
  const holdLimitMs = deps.holdLimitMs ?? DEFAULT_HOLD_LIMIT_MS;
  const isHeld = (channel: ConfirmChannel) => open.has(channel) && Date.now() < (lettingGoSince.get(channel) ?? Infinity) + holdLimitMs;
  const letGo = (channel: ConfirmChannel) => {
    if (!lettingGoSince.has(channel)) lettingGoSince.set(channel, Date.now());
  };
  const { forward, routeFailure, waitOut, deadLetter } = createHandOn({ ...deps, isHeld });
  const chains = new Map<string, Promise<void>>();
  const unsentMemory = createUnsentMemory();
  /** Messages in hand per shard, so that a shard can be released once its own are finished. */
  const inHand = new Map<number, Set<Promise<void>>>();
  // Once stopping, a reconnect must not start consuming again.
  let stopped = false;

  function track(shard: number, work: Promise<void>): void {
    const set = inHand.get(shard) ?? new Set();
    inHand.set(shard, set);
    set.add(work);
    // The queue's ready count leaves these out, and with the prefetch spread over 32 shards a
    // worker holds hundreds: WagateWorkerLag adds them to its backlog.
    deps.metrics.workerMessagesInHand.inc();
    void work.finally(() => {
      set.delete(work);
      deps.metrics.workerMessagesInHand.dec();
    });
  }

  /**
   * Starts work on a delivery. Deliveries of a channel that has closed were requeued by the
   * broker, and may already be with the worker that took the shard over: starting them here
   * would run a sender twice. Those of a fenced channel are left unacked for its close to
   * return, and so are those still waiting once the worker stops.
   */
  function begin(channel: ConfirmChannel, work: () => Promise<void>): Promise<void> {
    if (stopped || !open.has(channel) || fenced.has(channel)) return Promise.resolve();
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
    // The broker's own flag, not x-delivery-count: a message back from a retry tier is a new
    // delivery on the work queue, and its headers may carry the count of an earlier one.
    if (delivery.fields.redelivered) deps.metrics.workerRedeliveries.inc();
    const waitTier = tierToWaitOut(deps.topology, numberHeader(delivery, NOT_BEFORE_HEADER), Date.now());
    if (waitTier !== null) return waitOut(channel, delivery, payload, waitTier);
    const started = performance.now();
    const messageKey = amqpMessageId(payload.source, payload.messageId);
    const unsent = unsentMemory.of(delivery, messageKey);
    let outcome: ProcessOutcome;
    try {
      const deliveries = Number(delivery.properties.headers?.['x-delivery-count'] ?? 0);
      // The broker's delivery limit would drop the message into the DLQ without a reason and
      // leave its record 'processing'; take it out ourselves before it does. RabbitMQ versions
      // count the limit differently (3.10 delivers limit + 1 times), so this errs a delivery early.
      if (deliveries >= deps.topology.deliveryLimit - 1) {
        throw new PermanentError(`delivered ${deliveries + 1} times without finishing (each time a consumer crashed, lost its connection, or was cancelled while the broker was sending it: see wagate_worker_redeliveries_total)`);
      }
      // Continue the webhook's trace: the amqplib instrumentation's consume span when tracing
      // runs, otherwise the traceparent header the ingest wrote.
      const parent = trace.getSpan(context.active()) ? context.active() : contextFromTraceparent(delivery.properties.headers?.traceparent);
      outcome = await withSpan('wagate.process', { 'wagate.source': payload.source, 'wagate.type': payload.type }, () => deps.handle(payload, unsent, numberHeader(delivery, ATTEMPT_HEADER) ?? 0), parent);
    } catch (error) {
      const handedOn = await routeFailure(channel, delivery, payload, error, unsent).then(
        () => true,
        (routeError: Error) => {
          // The broker redelivers an unacked message; processing is idempotent.
          deps.log.error({ err: routeError.message, messageId: payload.messageId }, 'could not hand a failed message on; it will be redelivered');
          safely(() => channel.nack(delivery, false, true));
          // Given back while its shard is let go: the sender's later messages in hand must not
          // start after it went back, or its next consumer would take it after them. Fenced,
          // they go back with the channel, behind it.
          const entry = entryOf.get(channel);
          if (entry && lettingGoSince.has(channel) && !fenced.has(channel)) void fenceAndClose(entry);
          return false;
        },
      );
      if (handedOn) unsentMemory.forget(messageKey);
      else unsentMemory.remember(messageKey, unsent);
      return;
    } finally {
      deps.metrics.workerDuration.observe((performance.now() - started) / 1000);
    }
    if (outcome === 'not_ours') return giveBack(channel, payload);
    unsentMemory.forget(messageKey);
    deps.metrics.workerMessages.inc({ outcome });
    await failpoint('worker.before-ack');
    // The work is done and recorded; an ack lost with the channel only means a redelivery,
    // which the claim skips. It is not a processing failure to retry.
    safely(() => channel.ack(delivery));
  }

  /**
   * A message whose shard another worker took over while it waited in hand (this worker's
   * heartbeat lapsed, cut off from Postgres): it is left unacked, nothing more starts on its
   * channel, and the channel is closed once the work under way is finished, so that the broker
   * gives the messages in hand back to the queue, in order, for the new owner; as a relinquish
   * does when the worker itself finds its heartbeat lapsed.
   */
  function giveBack(channel: ConfirmChannel, payload: QueueMessage): void {
    const entry = entryOf.get(channel);
    deps.metrics.workerMessages.inc({ outcome: 'given_back' });
    if (!entry || fenced.has(channel)) return;
    const shard = shardOf(payload.senderKey, deps.topology.shards.length);
    if (deps.stopping?.() && lettingGoSince.has(channel)) {
      // The stop's drain has too little time left for a provider call: expected, not a takeover.
      deps.log.info({ shard }, 'letting go of this shard on stopping: its messages in hand go back to the queue unprocessed, since a provider call begun now could outlast the drain');
    } else {
      deps.log.warn({ shard }, 'this shard may be another worker\'s now (recorded so, or this worker\'s lease on it ran out with its heartbeats): giving its messages in hand back to the queue unprocessed');
    }
    void fenceAndClose(entry);
  }

  /**
   * Waits until every message of the shard in hand is finished. Those left unacked on a
   * fenced channel are finished only once its close has returned them to their queue: a
   * release recorded before that would let the next owner take later messages first.
   */
  async function settled(shard: number, entry?: ShardChannel | null): Promise<void> {
    for (let set = inHand.get(shard); set && set.size > 0; set = inHand.get(shard)) await Promise.allSettled([...set]);
    if (entry && fenced.has(entry.channel)) await entry.closed;
  }

  /**
   * Closes a shard's channel. close() settles only on the broker's answer, which a connection
   * lost meanwhile never gives; the close event comes either way.
   */
  async function closeChannel(entry: ShardChannel): Promise<void> {
    await Promise.race([entry.channel.close().catch(() => undefined), entry.closed]);
  }

  /**
   * The broker cancelled the shard's consumer: its queue was deleted (by hand, say). The
   * channel is closed, so that the coordinator's next round sees the consumer lost, releases
   * the shard and takes it up again, declaring the queue anew; until then the ingest keeps the
   * shard's messages in its outbox, since the broker returns them as unroutable.
   */
  function onCancelled(shard: number, entry: ShardChannel): void {
    deps.log.warn({ shard, queue: deps.topology.shards[shard]!.queue }, 'the broker cancelled a shard\'s consumer (its queue was deleted); taking the shard up again');
    void closeChannel(entry);
  }

  /**
   * Fences the channel so that nothing more starts on it, waits for the work under way on it,
   * and closes it: the broker returns every message it held but had not started to the front of
   * its queue, in order. A channel lost meanwhile has given everything back already. With
   * `closeBy`, the channel is closed then at the latest, work under way or not: what is under
   * way goes back too, and its ack, if it comes, is lost with the channel.
   */
  async function fenceAndClose(entry: ShardChannel, closeBy?: Promise<void>): Promise<void> {
    // Closed already (its connection lost): the broker has given everything back.
    if (!open.has(entry.channel)) return;
    fenced.add(entry.channel);
    letGo(entry.channel);
    const cutOff = closeBy?.then(() => 'cut off' as const);
    const onChannel = () => [...underWay].flatMap(([work, channel]) => (channel === entry.channel ? [work] : []));
    for (let work = onChannel(); work.length > 0; work = onChannel()) {
      const ended = await Promise.race([Promise.allSettled(work).then(() => 'finished' as const), entry.closed.then(() => 'closed' as const), ...(cutOff ? [cutOff] : [])]);
      if (ended === 'closed') break;
      if (ended === 'cut off') {
        deps.log.warn({ underWay: work.length }, 'closing a shard\'s broker channel with work still under way, since this worker\'s lease on the shard is about to end: those messages go back to the queue too');
        break;
      }
    }
    await closeChannel(entry);
  }

  /** Opens the shard's channel and starts its consumer there; null if the shard was let go meanwhile. */
  async function openShardChannel(current: NonNullable<typeof attached>, shard: number, prefetch: number): Promise<ShardChannel | null> {
    const channel = await current.connection.createConfirmChannel();
    channel.on('error', (error: Error) => deps.log.warn({ shard, err: error.message }, 'a shard\'s broker channel closed with an error'));
    open.add(channel);
    const entry: ShardChannel = { channel, tag: '', closed: Promise.resolve() };
    entryOf.set(channel, entry);
    // At once on the event, not a microtask later: deliveries read with the close must not start.
    entry.closed = new Promise<void>((resolve) => channel.once('close', () => {
      open.delete(channel);
      fenced.delete(channel);
      lettingGoSince.delete(channel);
      entryOf.delete(channel);
      // A consumer lost with its channel: the coordinator's next round releases the shard.
      if (current.shards.get(shard) === entry) current.shards.delete(shard);
      resolve();
    }));
    // Let go (or the connection lost) while the channel opened: nothing was consumed on it.
    if (attached !== current || current.shards.get(shard) !== null) {
      await closeChannel(entry);
      return null;
    }
    // From here a release or relinquish finds the channel itself and closes it.
    current.shards.set(shard, entry);
    let consumerTag: string;
    try {
      const queue = deps.topology.shards[shard]!.queue;
      // Declared here too, not only on connecting: a queue deleted under a running worker comes
      // back as soon as the shard is taken up again (see onCancelled).
      await declareShardQueue(channel, deps.topology, shard);
      await channel.prefetch(prefetch);
      // Deliveries can arrive before consume() resolves.
      ({ consumerTag } = await channel.consume(queue, (delivery) => (delivery ? onDelivery(channel, shard, delivery) : onCancelled(shard, entry))));
    } catch (error) {
      if (current.shards.get(shard) === entry) current.shards.delete(shard);
      await closeChannel(entry);
      throw error;
    }
    // Let go, or the channel lost, while the consume was under way: whoever let go closes it.
    if (current.shards.get(shard) !== entry || !open.has(channel)) return null;
    entry.tag = consumerTag;
    return entry;
  }

  return {
    async attach(connection, lost) {
      // Closed while the topology was declared: its close has been heard already, and a listener
      // added now would never be, so it would stay attached, dead, until the next reconnect.
      if (stopped || lost?.aborted) return;
      const current = { connection, shards: new Map<number, ShardChannel | null>() };
      attached = current;
      connection.once('close', () => {
        if (attached === current) attached = null;
      });
    },
    hasChannel: () => attached !== null,
    isSubscribed: (shard) => Boolean(attached?.shards.get(shard)?.tag),
    async subscribe(shard, prefetch) {
      const current = attached;
      if (stopped || !current) return false;
      const existing = current.shards.get(shard);
      // A fenced channel is about to close: its consumer is on its way out.
      if (existing !== undefined) return existing !== null && existing.tag !== '' && !fenced.has(existing.channel);
      // Recorded before the answer, so that a release meanwhile can tell this consumer to go.
      current.shards.set(shard, null);
      try {
        return (await openShardChannel(current, shard, prefetch)) !== null;
      } catch (error) {
        deps.log.warn({ shard, err: (error as Error).message }, 'could not start a shard\'s consumer; the next round tries again');
        if (current.shards.get(shard) === null) current.shards.delete(shard);
        return false;
      }
    },
    async release(shard, lease) {
      const current = attached;
      const entry = current?.shards.get(shard);
      if (current && entry !== undefined) current.shards.delete(shard);
      if (entry?.tag) {
        letGo(entry.channel);
        await entry.channel.cancel(entry.tag).catch(() => undefined);
        if (lease && (await Promise.race([settled(shard).then(() => false), lease.stalled.then(() => true)]))) {
          deps.log.warn({ shard }, 'this worker\'s heartbeats stalled while it released the shard: closing its broker channel once the messages under way are finished, so that the others in hand go back to the queue, in order, before another worker may take the shard');
          await fenceAndClose(entry, lease.ending);
        }
        await settled(shard, entry);
        // Every message of it is finished: closing the channel gives nothing back, and it waits
        // for the broker to take the acks sent on it.
        await closeChannel(entry);
        return;
      }
      // A consumer still being started has no tag to cancel: what it was given goes back.
      if (entry) await fenceAndClose(entry);
      await settled(shard, entry);
    },
    async relinquish(shard) {
      const current = attached;
      const entry = current?.shards.get(shard);
      // A channel still being opened is closed as soon as it is (openShardChannel).
      if (current && entry === null) current.shards.delete(shard);
      if (entry) {
        deps.log.warn({ shard }, 'closing the shard\'s broker channel once the messages under way are finished, so that the others in hand go back, in order, to the worker that took it over');
        await fenceAndClose(entry);
      }
      await settled(shard, entry);
    },
    async stop() {
      stopped = true;
      const current = attached;
      attached = null;
      const entries = [...(current?.shards.values() ?? [])].filter((entry): entry is ShardChannel => entry !== null);
      for (const channel of open) letGo(channel);
      // A channel being let go (relinquish, its drain timed out) is closed at once, not
      // cancelled: the worker that took the shard waits behind its consumer, and a cancel would
      // make that one active while this one still holds messages, a sender's earlier ones
      // among them. Closed, it gives them all back first, in order; the acks of the work still
      // under way are lost with it, and those messages are claimed again.
      const held = entries.filter((entry) => !fenced.has(entry.channel));
      for (const entry of entries) if (!held.includes(entry)) void closeChannel(entry);
      for (const entry of held) if (entry.tag) await entry.channel.cancel(entry.tag).catch(() => undefined);
      while (chains.size > 0) await Promise.allSettled([...chains.values()]);
      for (const shard of inHand.keys()) await settled(shard);
      // Closing each channel waits for the broker to take its acks; closing only the connection
      // could beat the last ones, and those messages would come back.
      await Promise.all(entries.map(closeChannel));
    },
  };
}
