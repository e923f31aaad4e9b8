import { shardLease } from '../../src/worker/shard-lease';

describe('shardLease', () => {
  const defaults = { replyTimeoutMs: 10_000, livenessTimeoutMs: 15_000, heartbeatMs: 2_000 };

  it('starts a call only while a whole REPLY_TIMEOUT_MS of the lease is left, with the defaults', () => {
    let left = 10_001;
    const lease = shardLease(() => left, defaults);
    expect(lease.coversCalls).toBe(true);
    expect(lease.mayCall()).toBe(true);
    left = 10_000;
    expect(lease.mayCall()).toBe(false);
    expect(lease.mayClaim()).toBe(true);
  });

  it('claims nothing once the lease is up, or before the first heartbeat', () => {
    let left = 0;
    const lease = shardLease(() => left, defaults);
    expect(lease.mayClaim()).toBe(false);
    left = -Infinity;
    expect(lease.mayClaim()).toBe(false);
    expect(lease.mayCall()).toBe(false);
  });

  it('asks a heartbeat\'s time for a call when the settings leave no room for two heartbeats beside it', () => {
    expect(shardLease(() => 0, { ...defaults, replyTimeoutMs: 11_000 }).coversCalls).toBe(true);
    let left = 2_001;
    const lease = shardLease(() => left, { ...defaults, replyTimeoutMs: 11_001 });
    expect(lease.coversCalls).toBe(false);
    expect(lease.mayCall()).toBe(true);
    left = 2_000;
    expect(lease.mayCall()).toBe(false);
  });
});
