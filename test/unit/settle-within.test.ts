import { failAfter, settleWithin } from '../../src/settle-within';

describe('settleWithin', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('settles with the work when it comes first, and leaves no timer behind', async () => {
    const result = settleWithin(Promise.resolve('done'), 1000, 'late');
    await expect(result).resolves.toBe('done');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('settles with the fallback once the time has passed', async () => {
    const result = settleWithin(new Promise<string>(() => undefined), 1000, 'late' as const);
    jest.advanceTimersByTime(999);
    let settled: string | undefined;
    void result.then((value) => (settled = value));
    await Promise.resolve();
    expect(settled).toBeUndefined();
    jest.advanceTimersByTime(1);
    await expect(result).resolves.toBe('late');
  });

  it('passes the work\'s rejection through', async () => {
    await expect(settleWithin(Promise.reject(new Error('refused')), 1000, 'late')).rejects.toThrow('refused');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('takes a deadline already past as no time at all', async () => {
    const result = settleWithin(new Promise(() => undefined), -5, 'late');
    jest.advanceTimersByTime(0);
    await expect(result).resolves.toBe('late');
  });
});

describe('failAfter', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('fails with the error made on timeout', async () => {
    const result = failAfter(new Promise(() => undefined), 50, () => new Error('ledger commit exceeded 50 ms'));
    jest.advanceTimersByTime(50);
    await expect(result).rejects.toThrow('ledger commit exceeded 50 ms');
  });

  it('settles with the work, even a falsy value, when it comes first', async () => {
    await expect(failAfter(Promise.resolve(0), 50, () => new Error('late'))).resolves.toBe(0);
  });
});
