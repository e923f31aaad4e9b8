import { shardLease } from '../../src/worker/shard-lease';

describe('shardLease', () => {
  const defaults = { replyTimeoutMs: 10_000, livenessTimeoutMs: 15_000, heartbeatMs: 2_000 };

  it('starts a call only while a whole REPLY_TIMEOUT_MS of the lease is left, with the defaults', () => {
    const now = { tenure: 1, leftMs: 10_001 };
    const lease = shardLease(() => now, defaults);
    expect(lease.coversCalls).toBe(true);
    const began = lease.claim()!;
    expect(lease.mayCall(began)).toBe(true);
    now.leftMs = 10_000;
    expect(lease.mayCall(began)).toBe(false);
  });

  it('claims nothing with a heartbeat or less of the lease left, or before the first heartbeat', () => {
    const now = { tenure: 1, leftMs: 2_001 };
    const lease = shardLease(() => now, defaults);
    expect(lease.claim()).toBe(1);
    now.leftMs = 2_000;
    expect(lease.claim()).toBeNull();
    now.leftMs = -Infinity;
    expect(lease.claim()).toBeNull();
  });

  it('calls for no work begun in an earlier tenure, however much of the new lease is left', () => {
    const now = { tenure: 1, leftMs: 14_000 };
    const lease = shardLease(() => now, defaults);
    const began = lease.claim()!;
    // The heartbeats stalled past the lease, then went through: another worker may hold the shard.
    now.tenure = 2;
    expect(lease.mayCall(began)).toBe(false);
    expect(lease.mayCall(lease.claim()!)).toBe(true);
  });

  it('asks a heartbeat\'s time for a call when the settings leave no room for two heartbeats beside it', () => {
    expect(shardLease(() => ({ tenure: 1, leftMs: 0 }), { ...defaults, replyTimeoutMs: 11_000 }).coversCalls).toBe(true);
    const now = { tenure: 1, leftMs: 2_001 };
    const lease = shardLease(() => now, { ...defaults, replyTimeoutMs: 11_001 });
    expect(lease.coversCalls).toBe(false);
    expect(lease.mayCall(1)).toBe(true);
    now.leftMs = 2_000;
    expect(lease.mayCall(1)).toBe(false);
  });
});
