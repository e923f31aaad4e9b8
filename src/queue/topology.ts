import { createHash } from 'node:crypto';
import type { Channel, Options } from 'amqplib';
import { WagateError } from '../errors';
import { isPreconditionFailed } from './amqp-errors';

const DEAD_ROUTING_KEY = 'dead';
/** Bound to no queue: the ingest's warm-up rehearses its publishes with it. */
const UNROUTED_ROUTING_KEY = 'rehearsal.unrouted';

export interface TopologyOptions {
  prefix: string;
  /** Attempts before the broker itself dead-letters a message that keeps crashing consumers. */
  deliveryLimit: number;
  retryDelaysMs: readonly number[];
  /** Work queues; a sender always maps to the same one (see shardOf). */
  shards: number;
}

export type Topology = ReturnType<typeof topologyNames>;

export function topologyNames(options: TopologyOptions) {
  const { prefix } = options;
  const shards = Array.from({ length: options.shards }, (_, index) => ({
    index,
    queue: `${prefix}.work.${index}`,
    routingKey: `work.${index}`,
  }));
  return {
    exchange: prefix,
    shards,
    retryTiers: options.retryDelaysMs.map((delayMs) => ({
      delayMs,
      exchange: `${prefix}.retry.${delayMs}ms`,
      queue: `${prefix}.retry.${delayMs}ms`,
    })),
    deadExchange: `${prefix}.dlx`,
    deadQueue: `${prefix}.dead`,
    deadRoutingKey: DEAD_ROUTING_KEY,
    deliveryLimit: options.deliveryLimit,
  };
}

/**
 * The same exchange, with every shard's routing key replaced by one no queue is bound to: a
 * mandatory publish through it runs the whole publish path, confirm and all, and the broker
 * returns the message instead of keeping it.
 */
export function unroutedTopology(topology: Topology): Topology {
  return { ...topology, shards: topology.shards.map((shard) => ({ ...shard, routingKey: UNROUTED_ROUTING_KEY })) };
}

/**
 * The work queue a sender belongs to. Each queue has a single active consumer, so one
 * sender's messages are never processed concurrently and keep their arrival order.
 */
export function shardOf(senderKey: string, shardCount: number): number {
  return createHash('sha1').update(senderKey).digest().readUInt32BE(0) % shardCount;
}

export function routingKeyFor(topology: Topology, senderKey: string): string {
  return topology.shards[shardOf(senderKey, topology.shards.length)]!.routingKey;
}

/**
 * Work goes to quorum queues (one per shard) with a delivery limit and a single active
 * consumer. Retry tiers are TTL queues, each behind its own fanout exchange, that
 * dead-letter back to the work exchange with the message's own routing key, so a retried
 * message returns to its sender's shard. The dead-letter queue is the end of the line.
 * Declaring is idempotent, so every process declares on every (re)connect.
 */
/**
 * RabbitMQ cannot change a queue's arguments in place: declaring an existing queue with other
 * arguments (a new QUEUE_DELIVERY_LIMIT, another queue type) fails with PRECONDITION_FAILED on
 * every attempt. Retrying cannot fix it, so it is raised as TOPOLOGY_CONFLICT, which says what
 * changed and how to migrate, and the process stops instead of reconnecting forever.
 */
export function topologyConflict(queue: string, brokerMessage: string): WagateError {
  return new WagateError(
    'TOPOLOGY_CONFLICT',
    `RabbitMQ refused to declare queue ${queue} because it exists with other arguments (${brokerMessage}). ` +
      'Queue arguments cannot change in place. To migrate: deploy with the previous setting, or stop every ' +
      'process of this QUEUE_PREFIX, let the queue drain (or move its messages with a shovel), delete it and start ' +
      'again; or run the new setting under a new QUEUE_PREFIX while old processes drain the old queues.',
  );
}

async function declareQueue(channel: Channel, queue: string, options: Options.AssertQueue): Promise<void> {
  try {
    await channel.assertQueue(queue, options);
  } catch (error) {
    if (!isPreconditionFailed(error)) throw error;
    const message = (error as Error).message;
    throw topologyConflict(queue, message.slice(message.indexOf('PRECONDITION_FAILED')));
  }
}

/** One work shard's queue and its binding; the exchanges must exist. */
export async function declareShardQueue(channel: Channel, topology: Topology, index: number): Promise<void> {
  const shard = topology.shards[index]!;
  await declareQueue(channel, shard.queue, {
    durable: true,
    arguments: {
      'x-queue-type': 'quorum',
      'x-single-active-consumer': true,
      'x-delivery-limit': topology.deliveryLimit,
      'x-dead-letter-exchange': topology.deadExchange,
      'x-dead-letter-routing-key': DEAD_ROUTING_KEY,
    },
  });
  await channel.bindQueue(shard.queue, topology.exchange, shard.routingKey);
}

/** `shardLimit`: only the first so many shard queues are declared (declarableShardCount). */
export async function assertTopology(channel: Channel, topology: Topology, shardLimit = topology.shards.length): Promise<void> {
  await channel.assertExchange(topology.exchange, 'direct', { durable: true });
  await declareDeadQueue(channel, topology);
  for (const shard of topology.shards.slice(0, shardLimit)) await declareShardQueue(channel, topology, shard.index);
  for (const tier of topology.retryTiers) await declareRetryTier(channel, topology, tier);
}

async function declareDeadQueue(channel: Channel, topology: Topology): Promise<void> {
  await channel.assertExchange(topology.deadExchange, 'direct', { durable: true });
  await declareQueue(channel, topology.deadQueue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await channel.bindQueue(topology.deadQueue, topology.deadExchange, DEAD_ROUTING_KEY);
}

async function declareRetryTier(channel: Channel, topology: Topology, tier: Topology['retryTiers'][number]): Promise<void> {
  await channel.assertExchange(tier.exchange, 'fanout', { durable: true });
  await declareQueue(channel, tier.queue, {
    durable: true,
    arguments: {
      'x-queue-type': 'classic',
      'x-message-ttl': tier.delayMs,
      // No dead-letter routing key: the message keeps its work.N key and returns to its shard.
      'x-dead-letter-exchange': topology.exchange,
    },
  });
  await channel.bindQueue(tier.queue, tier.exchange, '');
}

/**
 * Declares again the queue behind a hand-over's exchange, a retry tier's or the dead-letter
 * queue's, after the broker returned a hand-over to it: deleted by hand (the README says an old
 * tier's queue may go once empty), it would otherwise hold the message, and its sender, for
 * good. False for the work exchange: a shard queue may be missing on purpose (a shrinking
 * reshard deletes them), and only a worker that takes the shard declares it again.
 */
export async function declareHandOverTarget(channel: Channel, topology: Topology, exchange: string): Promise<boolean> {
  if (exchange === topology.deadExchange) {
    await declareDeadQueue(channel, topology);
    return true;
  }
  const tier = topology.retryTiers.find((candidate) => candidate.exchange === exchange);
  if (!tier) return false;
  await declareRetryTier(channel, topology, tier);
  return true;
}
