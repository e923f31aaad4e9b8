import { createLinger } from '../../src/ledger/linger';

/** A flush that records each call and answers every item with its double. */
function recordingFlush() {
  const calls: number[][] = [];
  const flush = async (items: number[]) => {
    calls.push(items);
    return items.map((item) => item * 2);
  };
  return { calls, flush };
}

it('flushes the items of calls made within the linger together and gives each caller its own results', async () => {
  const { calls, flush } = recordingFlush();
  const linger = createLinger(20, flush);
  const answers = await Promise.all([linger([1, 2]), linger([3]), linger([4, 5, 6])]);
  expect(calls).toEqual([[1, 2, 3, 4, 5, 6]]);
  expect(answers).toEqual([[2, 4], [6], [8, 10, 12]]);
});

it('starts a new gathering after a flush', async () => {
  const { calls, flush } = recordingFlush();
  const linger = createLinger(5, flush);
  await linger([1]);
  await linger([2]);
  expect(calls).toEqual([[1], [2]]);
});

it('flushes every call alone without a linger', async () => {
  const { calls, flush } = recordingFlush();
  const linger = createLinger(0, flush);
  await Promise.all([linger([1]), linger([2])]);
  expect(calls).toEqual([[1], [2]]);
});

it('gives every caller of a failed flush its error', async () => {
  const linger = createLinger(5, async (_items: number[]): Promise<number[]> => {
    throw new Error('broker gone');
  });
  const results = await Promise.allSettled([linger([1]), linger([2])]);
  expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
  expect((results[0] as PromiseRejectedResult).reason).toEqual(new Error('broker gone'));
});
