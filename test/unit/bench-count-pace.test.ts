import { nextCountDelayMs } from '../../bench/count-pace';

it('counts every 50 ms until the first message is finished', () => {
  expect(nextCountDelayMs(0, 8000, 0)).toBe(50);
  expect(nextCountDelayMs(0, 8000, 3000)).toBe(50);
});

it('waits a quarter of the time the drain still looks to need, at most a second', () => {
  // 2,000 of 8,000 in 2 s: 6 s to go, so the next count in 1 s (the cap), not 1.5 s.
  expect(nextCountDelayMs(2000, 8000, 2000)).toBe(1000);
  // 6,000 of 8,000 in 6 s: 2 s to go, so the next count in 500 ms.
  expect(nextCountDelayMs(6000, 8000, 6000)).toBe(500);
});

it('counts every 50 ms as the end nears, and once the count has reached the total', () => {
  expect(nextCountDelayMs(7950, 8000, 8000)).toBe(50);
  expect(nextCountDelayMs(8000, 8000, 8000)).toBe(50);
});
