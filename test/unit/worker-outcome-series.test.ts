import { createMetrics } from '../../src/telemetry/metrics';

describe('the worker outcome counter', () => {
  it('starts every outcome its help names at 0, so the first of each after a start shows in rate()', async () => {
    const { workerMessages } = createMetrics('worker', { processMetrics: false });
    const { help, values } = await workerMessages.get();
    const named = /by outcome \(([^)]*)\)/.exec(help)![1]!.split(', ');
    expect(named).toContain('given_back');
    expect(values.map((value) => value.labels.outcome).sort()).toEqual([...named].sort());
    expect(values.every((value) => value.value === 0)).toBe(true);
  });
});
