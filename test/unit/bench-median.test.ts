import { medianOf, percent } from '../../bench/report';

describe('the bench\'s median over rounds', () => {
  it('takes the middle round, or the mean of the two middle ones', () => {
    expect(medianOf([3, 1, 2])).toBe(2);
    expect(medianOf([4, 1, 3, 2])).toBe(2.5);
    expect(medianOf([{ drainMs: 30, rps: 1 }, { drainMs: 10, rps: 3 }, { drainMs: 20, rps: 2 }])).toEqual({ drainMs: 20, rps: 2 });
  });

  it('has no median for a figure one round lacks, rather than the median of the rounds that have it', () => {
    // An outbox that never drained in one round: the other rounds' 15 ms would hide it.
    expect(medianOf([10, null, 20])).toBeNull();
    expect(medianOf([{ drainMs: 10 }, { drainMs: null }, { drainMs: 20 }])).toEqual({ drainMs: null });
    // A ratio over nothing: NaN sorted among numbers made the median depend on where it fell.
    expect(medianOf([Number.NaN, 3, 1, 2])).toBeNull();
    expect(medianOf([Number.POSITIVE_INFINITY, 1, 2])).toBeNull();
  });

  it('prints a missing ratio as a dash, not as NaN %', () => {
    expect(percent(0.2041)).toBe('20.4 %');
    expect(percent(Number.NaN)).toBe('-');
    expect(percent(null)).toBe('-');
  });
});
