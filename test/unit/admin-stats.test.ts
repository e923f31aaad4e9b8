import { toTenthMs } from '../../src/http/admin-stats';

describe('stats percentiles', () => {
  it('rounds interpolated percentiles to a tenth of a millisecond', () => {
    expect(toTenthMs(5.399999999999984)).toBe(5.4);
    expect(toTenthMs(12.35)).toBe(12.4);
    expect(toTenthMs(3)).toBe(3);
  });

  it('keeps "no data" as null', () => {
    expect(toTenthMs(null)).toBeNull();
    expect(toTenthMs(undefined)).toBeNull();
  });
});
