import type { Channel } from 'amqplib';

export const WORK_ROUTING_KEY = 'work';
const DEAD_ROUTING_KEY = 'dead';

export interface TopologyOptions {
  prefix: string;
  /** Attempts before the broker itself dead-letters a message that keeps crashing consumers. */
  deliveryLimit: number;
  retryDelaysMs: readonly number[];
}

export type Topology = ReturnType<typeof topologyNames>;

export function topologyNames(options: TopologyOptions) {
  const { prefix } = options;
  return {
    exchange: prefix,
    workQueue: `${prefix}.work`,
    retryExchange: `${prefix}.retry`,
    retryTiers: options.retryDelaysMs.map((delayMs, index) => ({
      delayMs,
      routingKey: `tier${index + 1}`,
      queue: `${prefix}.retry.${delayMs}ms`,
    })),
    deadExchange: `${prefix}.dlx`,
    deadQueue: `${prefix}.dead`,
    deliveryLimit: options.deliveryLimit,
  };
}

/**
 * Work goes to a quorum queue with a delivery limit. Retry tiers are TTL queues that
 * dead-letter back to the work queue; the dead-letter queue is the end of the line.
 * Declaring is idempotent, so every process declares on every (re)connect.
 */
export async function assertTopology(channel: Channel, topology: Topology): Promise<void> {
  await channel.assertExchange(topology.exchange, 'direct', { durable: true });
  await channel.assertExchange(topology.retryExchange, 'direct', { durable: true });
  await channel.assertExchange(topology.deadExchange, 'direct', { durable: true });

  await channel.assertQueue(topology.deadQueue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await channel.bindQueue(topology.deadQueue, topology.deadExchange, DEAD_ROUTING_KEY);

  await channel.assertQueue(topology.workQueue, {
    durable: true,
    arguments: {
      'x-queue-type': 'quorum',
      'x-delivery-limit': topology.deliveryLimit,
      'x-dead-letter-exchange': topology.deadExchange,
      'x-dead-letter-routing-key': DEAD_ROUTING_KEY,
    },
  });
  await channel.bindQueue(topology.workQueue, topology.exchange, WORK_ROUTING_KEY);

  for (const tier of topology.retryTiers) {
    await channel.assertQueue(tier.queue, {
      durable: true,
      arguments: {
        'x-queue-type': 'classic',
        'x-message-ttl': tier.delayMs,
        'x-dead-letter-exchange': topology.exchange,
        'x-dead-letter-routing-key': WORK_ROUTING_KEY,
      },
    });
    await channel.bindQueue(tier.queue, topology.retryExchange, tier.routingKey);
  }
}
