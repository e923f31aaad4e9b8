import { shardLease } from '../../src/worker/shard-lease';

describe('shardLease', () => {
  const defaults = { replyTimeoutMs: 10_000, livenessTimeoutMs: 15_000, heartbeatMs: 2_000 };

  it('starts a call at once while a whole REPLY_TIMEOUT_MS of the lease is left, with the defaults', async () => {
    const lease = shardLease(() => ({ tenure: 1, leftMs: 10_001 }), defaults);
    expect(lease.coversCalls).toBe(true);
    expect(await lease.mayCall((await lease.claim())!)).toBe(true);
  });

  it('waits with less left, and calls once a heartbeat renews the lease', async () => {
    const now = { tenure: 1, leftMs: 10_000 };
    const lease = shardLease(() => now, defaults);
    let answer: boolean | undefined;
    const asked = lease.mayCall(1).then((result) => (answer = result));
    await new Promise((resolve) => setImmediate(resolve));
    expect(answer).toBeUndefined();
    now.leftMs = 14_000;
    await asked;
    expect(answer).toBe(true);
  });

  it('gives the call up once the lease runs out while it waits', async () => {
    const now = { tenure: 1, leftMs: 5_000 };
    const lease = shardLease(() => now, defaults);
    const asked = lease.mayCall(1);
    now.leftMs = 0;
    expect(await asked).toBe(false);
  });

  it('calls for no work begun in an earlier tenure, however much of the new lease is left', async () => {
    const now = { tenure: 1, leftMs: 14_000 };
    const lease = shardLease(() => now, defaults);
    const began = (await lease.claim())!;
    // The heartbeats stalled past the lease, then went through: another worker may hold the shard.
    now.tenure = 2;
    expect(await lease.mayCall(began)).toBe(false);
    expect(await lease.mayCall((await lease.claim())!)).toBe(true);
  });

  it('claims once more than a heartbeat of the lease is left, and nothing once it has run out or before the first heartbeat', async () => {
    const now = { tenure: 1, leftMs: 2_000 };
    const lease = shardLease(() => now, defaults);
    const claimed = lease.claim();
    now.leftMs = 2_001;
    expect(await claimed).toBe(1);
    now.leftMs = 1_000;
    const refused = lease.claim();
    now.leftMs = 0;
    expect(await refused).toBeNull();
    now.leftMs = -Infinity;
    expect(await lease.claim()).toBeNull();
  });

  it('asks a heartbeat\'s time for a call when the settings leave no room for two heartbeats beside it', async () => {
    expect(shardLease(() => ({ tenure: 1, leftMs: 0 }), { ...defaults, replyTimeoutMs: 11_000 }).coversCalls).toBe(true);
    const lease = shardLease(() => ({ tenure: 1, leftMs: 2_001 }), { ...defaults, replyTimeoutMs: 11_001 });
    expect(lease.coversCalls).toBe(false);
    expect(await lease.mayCall(1)).toBe(true);
  });

  it('asks a heartbeat\'s time for a write when DB_STATEMENT_TIMEOUT_MS leaves no room for two heartbeats beside it', async () => {
    expect(shardLease(() => ({ tenure: 1, leftMs: 0 }), { ...defaults, statementTimeoutMs: 11_000 }).coversWrites).toBe(true);
    const lease = shardLease(() => ({ tenure: 1, leftMs: 2_001 }), { ...defaults, statementTimeoutMs: 11_001 });
    expect(lease.coversWrites).toBe(false);
    expect(await lease.mayWrite(1)).toBe(true);
  });

  it('starts a decision\'s write only while DB_STATEMENT_TIMEOUT_MS of the lease is left, in the tenure its work began', async () => {
    const now = { tenure: 1, leftMs: 5_001 };
    const lease = shardLease(() => now, { ...defaults, statementTimeoutMs: 5_000 });
    expect(await lease.mayWrite(1)).toBe(true);
    now.leftMs = 4_000;
    const asked = lease.mayWrite(1);
    now.leftMs = 0;
    expect(await asked).toBe(false);
    now.tenure = 2;
    now.leftMs = 14_000;
    expect(await lease.mayWrite(1)).toBe(false);
  });

  it('asks a heartbeat\'s time for a write whose statement timeout the lease cannot cover', async () => {
    const lease = shardLease(() => ({ tenure: 1, leftMs: 2_001 }), { ...defaults, statementTimeoutMs: 120_000 });
    expect(await lease.mayWrite(1)).toBe(true);
  });
});
