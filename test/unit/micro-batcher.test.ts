import { createMicroBatcher, type MicroBatcherOptions } from '../../src/worker/micro-batcher';

class Unreachable extends Error {}
class TimedOut extends Error {}

/** A batcher over numbers whose statement doubles them, refuses 13, and records every batch it ran. */
function doubling(overrides: Partial<MicroBatcherOptions<number, number>> = {}) {
  const batches: number[][] = [];
  const batcher = createMicroBatcher<number, number>({
    async run(items) {
      batches.push(items);
      await new Promise((resolve) => setImmediate(resolve));
      if (items.includes(13)) throw new Error('13 is refused');
      return items.map((item) => item * 2);
    },
    maxItems: 8,
    maxConcurrent: 1,
    minItemsToOverlap: 1,
    failsEveryItem: (error) => error instanceof Unreachable,
    ...overrides,
  });
  return { batcher, batches };
}

describe('micro-batcher', () => {
  it('runs items submitted together as one batch, and answers each caller with its own result', async () => {
    const { batcher, batches } = doubling();
    await expect(Promise.all([1, 2, 3, 4].map((item) => batcher.submit(item)))).resolves.toEqual([2, 4, 6, 8]);
    expect(batches).toEqual([[1, 2, 3, 4]]);
  });

  it('gathers items that arrive while a batch runs into the next one, at most maxItems each', async () => {
    const { batcher, batches } = doubling({ maxItems: 3 });
    const first = batcher.submit(1);
    await new Promise((resolve) => setImmediate(resolve));
    const rest = [2, 3, 4, 5, 6].map((item) => batcher.submit(item));
    await Promise.all([first, ...rest]);
    expect(batches).toEqual([[1], [2, 3, 4], [5, 6]]);
  });

  it('starts a batch beside a running one only once minItemsToOverlap items wait; fewer wait for it', async () => {
    const started: number[][] = [];
    const finish: (() => void)[] = [];
    const batcher = createMicroBatcher<number, number>({
      run: (items) => {
        started.push(items);
        return new Promise((resolve) => finish.push(() => resolve(items)));
      },
      maxItems: 8,
      maxConcurrent: 2,
      minItemsToOverlap: 3,
      failsEveryItem: () => false,
    });
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const results = [batcher.submit(1)];
    await turn();
    results.push(batcher.submit(2), batcher.submit(3));
    await turn();
    // Two wait, fewer than three: they wait for the running batch.
    expect(started).toEqual([[1]]);
    results.push(batcher.submit(4));
    await turn();
    // Three wait: a second batch starts beside the first.
    expect(started).toEqual([[1], [2, 3, 4]]);
    finish.forEach((done) => done());
    await expect(Promise.all(results)).resolves.toEqual([1, 2, 3, 4]);
  });

  it('isolates a poison item: it alone fails, every other item of its batch gets its result', async () => {
    const { batcher, batches } = doubling();
    const results = await Promise.allSettled([10, 11, 12, 13, 14, 15].map((item) => batcher.submit(item)));
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : 'refused'))).toEqual([20, 22, 24, 'refused', 28, 30]);
    // The whole batch, then halves down to the poison item alone.
    expect(batches[0]).toEqual([10, 11, 12, 13, 14, 15]);
    expect(batches.filter((batch) => batch.includes(13)).at(-1)).toEqual([13]);
  });

  it('gives every item an error that is not theirs (the database is unreachable) without running them apart', async () => {
    const { batcher, batches } = doubling({
      run: async (items) => {
        batches.push(items);
        throw new Unreachable('no database');
      },
    });
    const results = await Promise.allSettled([1, 2, 3].map((item) => batcher.submit(item)));
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof Unreachable)).toBe(true);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('gives every item a timeout at once when both halves of a batch time out too: the cause is no item', async () => {
    const { batcher, batches } = doubling({
      run: async (items) => {
        batches.push(items);
        await new Promise((resolve) => setImmediate(resolve));
        throw new TimedOut('canceling statement due to statement timeout');
      },
      splitsOnce: (error) => error instanceof TimedOut,
    });
    const results = await Promise.allSettled([1, 2, 3, 4, 5, 6, 7, 8].map((item) => batcher.submit(item)));
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof TimedOut)).toBe(true);
    // The whole batch and its two halves: three statements, where bisection took fifteen.
    expect(batches).toEqual([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4], [5, 6, 7, 8]]);
  });

  it('bisects on to the item whose held row times out its batches, which alone gets the timeout', async () => {
    const { batcher, batches } = doubling({
      run: async (items) => {
        batches.push(items);
        await new Promise((resolve) => setImmediate(resolve));
        if (items.includes(3)) throw new TimedOut('canceling statement due to statement timeout');
        return items.map((item) => item * 2);
      },
      splitsOnce: (error) => error instanceof TimedOut,
    });
    const results = await Promise.allSettled([1, 2, 3, 4, 5, 6, 7, 8].map((item) => batcher.submit(item)));
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : 'timed out'))).toEqual([2, 4, 'timed out', 8, 10, 12, 14, 16]);
    expect(batches.at(-2)).toEqual([3]);
  });

  it('still bisects a half down to a poison item when that half fails for its own reason', async () => {
    let first = true;
    const { batcher, batches } = doubling({
      run: async (items) => {
        batches.push(items);
        await new Promise((resolve) => setImmediate(resolve));
        if (first) {
          first = false;
          throw new TimedOut('canceling statement due to statement timeout');
        }
        if (items.includes(13)) throw new Error('13 is refused');
        return items.map((item) => item * 2);
      },
      splitsOnce: (error) => error instanceof TimedOut,
    });
    const results = await Promise.allSettled([10, 11, 12, 13].map((item) => batcher.submit(item)));
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : 'refused'))).toEqual([20, 22, 24, 'refused']);
    expect(batches.at(-1)).toEqual([13]);
  });

  it('keeps a chain in order: a caller that awaits each item before the next sees them run in its order', async () => {
    const { batcher, batches } = doubling();
    const seen: Record<string, number[]> = { a: [], b: [] };
    const chain = async (name: string, items: number[]) => {
      for (const item of items) seen[name]!.push(await batcher.submit(item));
    };
    await Promise.all([chain('a', [1, 2, 3]), chain('b', [5, 6, 7])]);
    expect(seen).toEqual({ a: [2, 4, 6], b: [10, 12, 14] });
    // Each batch holds at most one item of each chain.
    expect(batches).toEqual([[1, 5], [2, 6], [3, 7]]);
  });
});
