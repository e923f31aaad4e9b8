/**
 * The most a shard consumer may hold, whatever its worker's share. Releasing a shard waits
 * for every message of it in hand, and one sender's messages run one after another: 128 of
 * them at a 100 ms provider answer take 13 s, within the default drain timeout.
 */
export const MAX_SHARD_PREFETCH = 128;

export interface PrefetchSettings {
  /** WORKER_PREFETCH: the least each shard consumer holds. */
  perShard: number;
  /** WORKER_MESSAGES_IN_HAND: what a worker aims to hold over all its shards; 0 turns it off. */
  inHand: number;
}

/**
 * The prefetch of each shard consumer of a worker that holds `share` shards. The worker's
 * statements batch the messages it holds, so a worker with fewer shards (more replicas)
 * takes more from each, and a claim carries about as many messages with three workers as
 * with one, instead of a third as many.
 */
export function shardPrefetch(settings: PrefetchSettings, share: number): number {
  if (settings.inHand === 0 || share < 1) return settings.perShard;
  const spread = Math.min(Math.ceil(settings.inHand / share), MAX_SHARD_PREFETCH);
  return Math.max(settings.perShard, spread);
}
