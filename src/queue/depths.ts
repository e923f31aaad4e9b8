import type { Config } from '../config';
import type { Broker } from './broker';
import { topologyNames, type Topology } from './topology';

export function topologyFromConfig(config: Config): Topology {
  return topologyNames({
    prefix: config.QUEUE_PREFIX,
    deliveryLimit: config.QUEUE_DELIVERY_LIMIT,
    retryDelaysMs: config.RETRY_DELAYS_MS,
    shards: config.WORK_SHARDS,
  });
}

/** Ready messages across all work shards, and in the dead-letter queue; null where unknown. */
export async function queueDepths(broker: Broker, topology: Topology): Promise<{ queue: number | null; deadLetters: number | null }> {
  const counts = await Promise.all(topology.shards.map((shard) => broker.readyCount(shard.queue)));
  const queue = counts.some((count) => count === null) ? null : counts.reduce<number>((sum, count) => sum + count!, 0);
  return { queue, deadLetters: await broker.readyCount(topology.deadQueue) };
}
