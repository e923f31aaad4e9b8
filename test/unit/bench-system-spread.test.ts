import { formatSpread, spread } from '../../bench/system-report';

it('gives the median and range of the rounds that have a figure, and says when some had none', () => {
  // A drain that did not finish within its bound has no time: it must not pass silently for one of three.
  const drains = spread([40, null, 60]);
  expect(drains).toEqual({ median: 50, min: 40, max: 60, rounds: 3, counted: 2 });
  expect(formatSpread(drains, 0, ' s')).toBe('50 s [40–60] (2 of 3 rounds)');
  expect(formatSpread(spread([40, 45, 60]), 0, ' s')).toBe('45 s [40–60]');
  expect(formatSpread(spread([null, null]), 0)).toBe('n/a');
  expect(formatSpread(spread([7, null]), 0)).toBe('7 (1 of 2 rounds)');
});
