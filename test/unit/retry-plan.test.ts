import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { MAX_RETRY_AFTER_MS, planRetry, planWait, tierToWaitOut } from '../../src/worker/retry-plan';

// Tiers of 5 s, 30 s, 5 min and 30 min, the default.
const topology = topologyFromConfig(loadConfig({ RETRY_DELAYS_MS: '5000,30000,300000,1800000' }));
const NOW = 1_800_000_000_000;

describe('retry plan', () => {
  it('moves one tier per retry and gives up after the last', () => {
    expect([0, 1, 2, 3].map((attempt) => planRetry(topology, attempt, undefined, NOW))).toEqual([
      { kind: 'retry', tier: 0, attempt: 1 },
      { kind: 'retry', tier: 1, attempt: 2 },
      { kind: 'retry', tier: 2, attempt: 3 },
      { kind: 'retry', tier: 3, attempt: 4 },
    ]);
    expect(planRetry(topology, 4, undefined, NOW)).toEqual({ kind: 'exhausted' });
  });

  it('waits out a longer Retry-After in a longer tier without using up a try', () => {
    // 60 s: the 5 min tier covers it, and the next retry is still only the second try.
    expect(planRetry(topology, 0, 60_000, NOW)).toEqual({ kind: 'retry', tier: 2, attempt: 1 });
    // A Retry-After shorter than the tier due changes nothing.
    expect(planRetry(topology, 1, 2_000, NOW)).toEqual({ kind: 'retry', tier: 1, attempt: 2 });
  });

  it('marks a Retry-After longer than every tier with a not-before time, capped at a day', () => {
    expect(planRetry(topology, 0, 2 * 3_600_000, NOW)).toEqual({ kind: 'retry', tier: 3, attempt: 1, notBefore: NOW + 2 * 3_600_000 });
    expect(planRetry(topology, 0, 10 * MAX_RETRY_AFTER_MS, NOW)).toMatchObject({ notBefore: NOW + MAX_RETRY_AFTER_MS });
  });

  it('parks a message back early in the tier that covers the time left, and lets it go once the time has come', () => {
    expect(tierToWaitOut(topology, NOW + 3_600_000, NOW)).toBe(3);
    expect(tierToWaitOut(topology, NOW + 20_000, NOW)).toBe(1);
    expect(tierToWaitOut(topology, NOW + 200, NOW)).toBeNull();
    expect(tierToWaitOut(topology, NOW - 1, NOW)).toBeNull();
    expect(tierToWaitOut(topology, undefined, NOW)).toBeNull();
  });

  it('parks a message through a database outage without using a try, however many times', () => {
    expect(planWait(topology, 0, 30_000)).toEqual({ kind: 'retry', tier: 1, attempt: 0 });
    // Even after the last try, waiting for the database never exhausts the tiers.
    expect(planWait(topology, 4, 30_000)).toEqual({ kind: 'retry', tier: 1, attempt: 4 });
  });
});
