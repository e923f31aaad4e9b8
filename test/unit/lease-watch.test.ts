import { watchLease } from '../../src/worker/lease-watch';

describe('watchLease', () => {
  const settings = { heartbeatMs: 2_000, livenessTimeoutMs: 15_000 };
  /** A lease counted from the last heartbeat sent, on jest's clock. */
  let sentAt: number;
  let outstanding: boolean;
  const sources = { leftMs: () => settings.livenessTimeoutMs - (Date.now() - sentAt), heartbeatOutstanding: () => outstanding };
  const settledYet = (promise: Promise<void>) => {
    const seen = { settled: false };
    void promise.then(() => (seen.settled = true));
    return seen;
  };

  beforeEach(() => {
    jest.useFakeTimers();
    sentAt = Date.now();
    outstanding = true;
  });

  afterEach(() => {
    jest.useRealTimers();
  });

  it('says the heartbeats stalled two heartbeats after the last that went through, with one outstanding, and the lease is ending a heartbeat before its end', async () => {
    const watch = watchLease(sources, settings);
    const stalled = settledYet(watch.stalled);
    const ending = settledYet(watch.ending);
    await jest.advanceTimersByTimeAsync(3_999);
    expect(stalled.settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(stalled.settled).toBe(true);
    await jest.advanceTimersByTimeAsync(8_999);
    expect(ending.settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(ending.settled).toBe(true);
    watch.stop();
  });

  it('follows a lease that heartbeats lengthen', async () => {
    const watch = watchLease(sources, settings);
    const stalled = settledYet(watch.stalled);
    await jest.advanceTimersByTimeAsync(2_000);
    sentAt = Date.now();
    await jest.advanceTimersByTimeAsync(3_000);
    expect(stalled.settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1_000);
    expect(stalled.settled).toBe(true);
    watch.stop();
  });

  it('takes a lease short only because a round took long for no stall, until the lease is ending', async () => {
    // No heartbeat outstanding: the coordinator's round (a slow take) delayed the next one.
    outstanding = false;
    const watch = watchLease(sources, settings);
    const stalled = settledYet(watch.stalled);
    await jest.advanceTimersByTimeAsync(6_000);
    expect(stalled.settled).toBe(false);
    // The next heartbeat is sent and hangs.
    outstanding = true;
    await jest.advanceTimersByTimeAsync(500);
    expect(stalled.settled).toBe(true);
    watch.stop();
  });

  it('says the heartbeats stalled once the lease is ending, outstanding or not', async () => {
    outstanding = false;
    const watch = watchLease(sources, settings);
    const stalled = settledYet(watch.stalled);
    await jest.advanceTimersByTimeAsync(12_999);
    expect(stalled.settled).toBe(false);
    await jest.advanceTimersByTimeAsync(500);
    expect(stalled.settled).toBe(true);
    watch.stop();
  });

  it('says both at once when there is no lease (no heartbeat yet, or the worker left the group)', async () => {
    const watch = watchLease({ leftMs: () => -Infinity, heartbeatOutstanding: () => false }, settings);
    await expect(Promise.all([watch.stalled, watch.ending])).resolves.toEqual([undefined, undefined]);
    watch.stop();
  });

  it('leaves no timer behind once stopped', async () => {
    const watch = watchLease(sources, settings);
    const ending = settledYet(watch.ending);
    watch.stop();
    expect(jest.getTimerCount()).toBe(0);
    await jest.advanceTimersByTimeAsync(20_000);
    expect(ending.settled).toBe(false);
  });
});
