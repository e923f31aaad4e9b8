import { writeProviderAnswer } from '../../src/orders/write-provider-answer';

/** A write that fails with `code` the first `failures` times, then answers 'written'. */
function failingWrite(code: string, failures = Number.POSITIVE_INFINITY) {
  const write = jest.fn(async () => {
    if (write.mock.calls.length <= failures) throw Object.assign(new Error(`failed with ${code}`), { code });
    return 'written';
  });
  return write;
}

/** Settles the write, advancing the fake clock 100 ms at a time, for at most `limitMs`. */
async function settle<T>(work: Promise<T>, limitMs: number): Promise<{ value?: T; error?: Error; elapsedMs: number }> {
  const started = Date.now();
  let outcome: { value?: T; error?: Error } | null = null;
  work.then((value) => (outcome = { value }), (error: Error) => (outcome = { error }));
  while (outcome === null && Date.now() - started < limitMs) await jest.advanceTimersByTimeAsync(100);
  if (outcome === null) throw new Error(`the write had not settled after ${limitMs} ms`);
  return { ...(outcome as { value?: T; error?: Error }), elapsedMs: Date.now() - started };
}

describe('writeProviderAnswer', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('tries a deadlocked write again, and answers what the try that went through returned', async () => {
    const write = failingWrite('40P01', 2);
    const outcome = await settle(writeProviderAnswer(write), 10_000);
    expect(outcome.value).toBe('written');
    expect(write).toHaveBeenCalledTimes(3);
  });

  it('waits for a Postgres that cannot be reached for about 30 s before giving the error to the consumer', async () => {
    const write = failingWrite('ECONNREFUSED');
    const outcome = await settle(writeProviderAnswer(write), 60_000);
    expect(outcome.error?.message).toBe('failed with ECONNREFUSED');
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(30_000);
    expect(write.mock.calls.length).toBeGreaterThan(20);
  });

  it('gives up on a statement past its own limit (53400) after the short tries, not as an outage', async () => {
    const write = failingWrite('53400');
    const outcome = await settle(writeProviderAnswer(write), 60_000);
    expect(outcome.error?.message).toBe('failed with 53400');
    expect(write).toHaveBeenCalledTimes(4);
    expect(outcome.elapsedMs).toBeLessThan(5_000);
  });

  it('gives up after the short tries once its own pool is closed', async () => {
    const write = failingWrite('CONNECTION_ENDED');
    const outcome = await settle(writeProviderAnswer(write), 60_000);
    expect(write).toHaveBeenCalledTimes(4);
    expect(outcome.elapsedMs).toBeLessThan(5_000);
  });

  it('throws a failure no retry can fix (a constraint) at once', async () => {
    const write = failingWrite('23505');
    const outcome = await settle(writeProviderAnswer(write), 1_000);
    expect(outcome.error?.message).toBe('failed with 23505');
    expect(write).toHaveBeenCalledTimes(1);
  });
});
