import { countKeptThroughFailures } from '../../src/telemetry/count-kept-through-failures';

describe('a gauge counted in Postgres', () => {
  it('keeps its last count through failed reads for a while, then forgets it, and shows the next good count', async () => {
    let clock = 0;
    let answer: number | Error = 4;
    const shown: (number | 'forgotten')[] = [];
    const refresh = countKeptThroughFailures(
      async () => {
        if (answer instanceof Error) throw answer;
        return answer;
      },
      (count) => shown.push(count),
      () => shown.push('forgotten'),
      1000,
      () => clock,
    );
    await refresh();
    answer = new Error('connection refused');
    clock = 1000;
    await refresh();
    // A stumble: the 4 stands, so an alert on it neither resolves nor restarts its wait.
    expect(shown).toEqual([4]);
    clock = 1001;
    await refresh();
    expect(shown).toEqual([4, 'forgotten']);
    answer = 2;
    await refresh();
    expect(shown).toEqual([4, 'forgotten', 2]);
  });
});
