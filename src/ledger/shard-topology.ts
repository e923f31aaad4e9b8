import type { ChannelModel, Channel } from 'amqplib';
import type { Sql } from '../db/client';
import { WagateError } from '../errors';
import { removeSurplusShardQueues } from '../queue/surplus-queues';
import { assertTopology, type Topology } from '../queue/topology';
import type { Logger } from '../telemetry/logger';
import { withReshardLock } from './reshard-lock';
import { declarableShardCount, storedShardCount } from './shard-count';

/**
 * What an ingest or a worker declares each time it connects to the broker: the exchanges,
 * the retry tiers and the shard queues of the stored count (declarableShardCount).
 *
 * A process on the old count that read it just before a shrinking reshard deleted the surplus
 * queues can declare one of them again, and an old-count ingest's publishes would then wait
 * there for a worker that never comes. So the count is read again once declared: a process
 * that finds fewer shards stored than it declared removes the surplus itself, its messages
 * going to their senders' shards, under the group's reshard lock. The reshard checks the
 * broker again after storing its count, for a process that read the count before it did.
 * While a reshard holds the lock, the connection fails and is tried again, as after any
 * failed setup.
 */
export async function declareShardTopology(sql: Sql, channel: Channel, connection: ChannelModel, topology: Topology,
  queuePrefix: string, log: Logger): Promise<void> {
  const declared = await declarableShardCount(sql, queuePrefix, topology.shards.length, log);
  await assertTopology(channel, topology, declared);
  if (await shrankBelow(sql, queuePrefix, declared)) await removeRedeclaredSurplus(sql, connection, topology, queuePrefix, declared, log);
}

/** A process declared `declared` shard queues, and finds fewer stored now: removes the surplus ones under the group's reshard lock. */
export async function removeRedeclaredSurplus(sql: Sql, connection: ChannelModel, topology: Topology, queuePrefix: string,
  declared: number, log: Logger): Promise<void> {
  const run = await withReshardLock(sql, queuePrefix, async () => {
    const stored = await storedShardCount(sql, queuePrefix);
    return stored !== null && stored < declared ? removeSurplusShardQueues(connection, topology, stored) : null;
  });
  if (!run.taken) {
    throw new WagateError('OPERATION_REFUSED',
      `a reshard of "${queuePrefix}" is running and made shard queues this process declared surplus; connecting again once it has finished`);
  }
  const sweep = run.value;
  if (sweep && sweep.removed.length > 0) {
    log.warn({ queues: sweep.removed, moved: sweep.moved },
      'removed shard queues that this process had declared again after a reshard made them surplus; their messages went to their senders\' shards. Set WORK_SHARDS to the stored count');
  }
  if (sweep && sweep.consumed.length > 0) {
    log.error({ queues: sweep.consumed },
      'surplus shard queues beyond the stored count have consumers, so their messages were not moved: stop the processes still running with the old WORK_SHARDS, then run wagate reshard again');
  }
}

/** True when the stored count is now below what was declared; false when it is not, or cannot be read. */
async function shrankBelow(sql: Sql, queuePrefix: string, declared: number): Promise<boolean> {
  try {
    const stored = await storedShardCount(sql, queuePrefix);
    return stored !== null && stored < declared;
  } catch {
    // Unread, the count was most likely unread before declaring too (Postgres away, or not
    // migrated yet), and every configured queue was declared as before.
    return false;
  }
}
