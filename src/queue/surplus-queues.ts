import type { ChannelModel } from 'amqplib';
import { inspectQueue } from './inspect-queue';
import { emptyQueue, senderShardOrDead } from './move-messages';
import type { Topology } from './topology';

export interface SurplusSweep {
  /** Surplus shard queues found and deleted. */
  removed: string[];
  /** Messages they held, put on their sender's shard of the kept count. */
  moved: number;
  /** Surplus queues left alone because something consumes them, with how many consumers. */
  consumed: { queue: string; consumers: number }[];
}

/**
 * Removes the shard queues of `topology` from index `count` on that exist: each is unbound
 * (an old-count publish then comes back to its outbox as unroutable), its messages go to
 * their sender's shard under `count` (or to the dead-letter queue when one names no sender),
 * and it is deleted. A queue that something consumes is left, since the move would wait
 * behind that single active consumer for good. The caller holds the group's reshard lock, so
 * nothing else empties or deletes these queues at the same time.
 */
export async function removeSurplusShardQueues(connection: ChannelModel, topology: Topology, count: number): Promise<SurplusSweep> {
  const sweep: SurplusSweep = { removed: [], moved: 0, consumed: [] };
  const kept = { ...topology, shards: topology.shards.slice(0, count) };
  for (const shard of topology.shards.slice(count)) {
    const counts = await inspectQueue(connection, shard.queue);
    if (!counts) continue;
    if (counts.consumerCount > 0) {
      sweep.consumed.push({ queue: shard.queue, consumers: counts.consumerCount });
      continue;
    }
    const channel = await connection.createChannel();
    try {
      await channel.unbindQueue(shard.queue, topology.exchange, shard.routingKey);
      sweep.moved += await emptyQueue(connection, shard.queue, (message) => senderShardOrDead(kept, message));
      // Quorum queues refuse if-empty deletes; nothing is bound to it any more, and it reads empty.
      await channel.deleteQueue(shard.queue);
      sweep.removed.push(shard.queue);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }
  return sweep;
}
