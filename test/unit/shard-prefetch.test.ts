import { MAX_SHARD_PREFETCH, shardPrefetch } from '../../src/worker/shard-prefetch';

describe('shardPrefetch', () => {
  const defaults = { perShard: 32, inHand: 512 };

  it('spreads the messages in hand over the worker\'s shards', () => {
    expect(shardPrefetch(defaults, 8)).toBe(64);
    expect(shardPrefetch(defaults, 6)).toBe(86);
  });

  it('never gives a consumer less than WORKER_PREFETCH', () => {
    expect(shardPrefetch(defaults, 32)).toBe(32);
    expect(shardPrefetch({ perShard: 200, inHand: 512 }, 2)).toBe(200);
  });

  it('caps a consumer at MAX_SHARD_PREFETCH, so that a release stays short', () => {
    expect(shardPrefetch(defaults, 1)).toBe(MAX_SHARD_PREFETCH);
    expect(shardPrefetch(defaults, 3)).toBe(MAX_SHARD_PREFETCH);
  });

  it('keeps WORKER_PREFETCH per consumer when WORKER_MESSAGES_IN_HAND is 0, or before the worker has a share', () => {
    expect(shardPrefetch({ perShard: 1, inHand: 0 }, 1)).toBe(1);
    expect(shardPrefetch(defaults, 0)).toBe(32);
  });
});
