import type { Config } from '../config';
import type { Metrics } from '../telemetry/metrics';
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

/**
 * Refreshes the broker-derived gauges. AMQP passive declares give ready counts only (no
 * unacked). A failed read removes the series rather than leaving the last value, which
 * max() across workers would keep showing (a purged dead-letter queue still "present").
 */
export async function refreshQueueGauges(broker: Broker, topology: Topology, metrics: Metrics): Promise<void> {
  const shards = await Promise.all(topology.shards.map((shard) => broker.inspect(shard.queue).catch(() => null)));
  if (shards.every((shard) => shard !== null)) {
    metrics.queueReady.set({ queue: 'work' }, shards.reduce((sum, shard) => sum + shard!.messageCount, 0));
    metrics.queueConsumers.set(shards.reduce((sum, shard) => sum + shard!.consumerCount, 0));
  } else {
    metrics.queueReady.remove({ queue: 'work' });
    // A gauge without labels cannot be removed, and reset() would report 0 consumers; NaN shows
    // as a gap and max() across workers passes over it.
    metrics.queueConsumers.set(Number.NaN);
  }
  shards.forEach((shard, index) => {
    const labels = { shard: String(index) };
    if (shard) {
      metrics.shardReady.set(labels, shard.messageCount);
      metrics.shardConsumers.set(labels, shard.consumerCount);
    } else {
      metrics.shardReady.remove(labels);
      metrics.shardConsumers.remove(labels);
    }
  });
  const dead = await broker.readyCount(topology.deadQueue).catch(() => null);
  if (dead !== null) metrics.queueReady.set({ queue: 'dead' }, dead);
  else metrics.queueReady.remove({ queue: 'dead' });
}
