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

export type QueueDepths = { queue: number | null; deadLetters: number | null };

const UNKNOWN_DEPTHS: QueueDepths = { queue: null, deadLetters: null };

/** Ready messages across all work shards, and in the dead-letter queue; null where unknown. */
async function queueDepths(broker: Broker, topology: Topology): Promise<QueueDepths> {
  const counts = await Promise.all(topology.shards.map((shard) => broker.readyCount(shard.queue)));
  const queue = counts.some((count) => count === null) ? null : counts.reduce<number>((sum, count) => sum + count!, 0);
  return { queue, deadLetters: await broker.readyCount(topology.deadQueue) };
}

/**
 * How long a caller waits at least for the broker's counts before it is told they are unknown.
 * Each queue is asked in turn, with 5 s for each answer, so a broker that stops answering would
 * otherwise hold a stats call for minutes, past the HTTP server's own timeout.
 */
const DEPTHS_WAIT_MS = 2_000;

/**
 * queueDepths for the admin stats: unknown at once while the broker blocks the connection (a
 * memory or disk alarm: it reads nothing more from it, so every question would wait out its
 * timeout), and unknown once DEPTHS_WAIT_MS have passed and `alongside` (the stats' own
 * database read, which the answer waits for anyway) has settled: a busy broker with many
 * shards, slower than 2 s but no slower than the read, still gives its counts. One lookup at a
 * time, shared by every caller meanwhile, so that calls made while the broker is slow do not
 * queue questions behind each other.
 */
export function createQueueDepthsLookup(broker: Broker, topology: Topology, waitMs = DEPTHS_WAIT_MS) {
  let inFlight: Promise<QueueDepths> | null = null;
  return (alongside: Promise<unknown> = Promise.resolve()): Promise<QueueDepths> => {
    if (broker.blockedSince() !== null) return Promise.resolve(UNKNOWN_DEPTHS);
    inFlight ??= queueDepths(broker, topology).catch(() => UNKNOWN_DEPTHS).finally(() => (inFlight = null));
    // A timer left pending after an early answer costs nothing here: one stats call at a time.
    const atLeast = new Promise<void>((resolve) => setTimeout(resolve, waitMs).unref());
    const givenUp = Promise.all([atLeast, alongside.catch(() => undefined)]).then(() => UNKNOWN_DEPTHS);
    return Promise.race([inFlight, givenUp]);
  };
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
