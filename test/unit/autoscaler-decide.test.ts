import { DEFAULT_TOLERANCE, decide, wantedReplicas, type ScaleDownMemory, type ScalingPolicy } from '../../src/autoscaler/decide';

const NOW = 1_800_000_000_000;
const WINDOW_MS = 300_000;
const policy: ScalingPolicy = {
  targetPerReplica: 100,
  minReplicas: 1,
  maxReplicas: 8,
  shards: 8,
  scaleDownStabilizationMs: WINDOW_MS,
  tickGapMs: 20_000,
  tolerance: DEFAULT_TOLERANCE,
};
/** Ticks up to a window apart, every one of them succeeding (an interval of minutes). */
const sparse: ScalingPolicy = { ...policy, tickGapMs: WINDOW_MS };

describe('autoscaler decision', () => {
  it.each([
    // backlog, policy change, wanted
    [0, {}, 1],
    [1, {}, 1],
    [100, {}, 1],
    [101, {}, 2],
    [750, {}, 8],
    [100_000, {}, 8],
    [0, { minReplicas: 3 }, 3],
    [5000, { maxReplicas: 20, shards: 4 }, 4],
    [5000, { maxReplicas: 2, shards: 16 }, 2],
    [5000, { minReplicas: 6, shards: 4 }, 4],
    [250, { targetPerReplica: 50 }, 5],
  ])('asks for ceil(backlog / target) clamped to [min, max] and to the shards: backlog %d, %o -> %d', (backlog, change, wanted) => {
    expect(wantedReplicas(backlog, { ...policy, ...change })).toBe(wanted);
  });

  it.each([
    // backlog, current, desired, reason
    [150, 2, 2, 'steady'],
    [0, 1, 1, 'steady'],
    [800, 1, 2, 'scale_up'],
    [800, 2, 4, 'scale_up'],
    [800, 4, 8, 'scale_up'],
    [800, 5, 8, 'scale_up'],
    [300, 2, 3, 'scale_up'],
    [205, 2, 2, 'within_tolerance'],
    [395, 4, 4, 'steady'],
    [410, 4, 4, 'within_tolerance'],
    [800, 0, 1, 'out_of_bounds'],
    [800, 12, 8, 'out_of_bounds'],
  ])('backlog %d with %d replicas running -> %d (%s)', (backlog, current, desired, reason) => {
    expect(decide({ backlog, currentReplicas: current, nowMs: NOW, memory: null }, policy)).toMatchObject({ desired, reason });
  });

  it('does not scale down for a backlog inside the tolerance either', () => {
    const wide = { ...policy, maxReplicas: 16, shards: 16 };
    expect(decide({ backlog: 1090, currentReplicas: 12, nowMs: NOW, memory: null }, wide)).toMatchObject({ desired: 12, reason: 'within_tolerance', wanted: 11 });
    expect(decide({ backlog: 1000, currentReplicas: 12, nowMs: NOW, memory: null }, wide)).toMatchObject({ desired: 12, reason: 'stabilising', wanted: 10 });
  });

  it('never more than doubles in one step, even from one replica to a full backlog', () => {
    let current = 1;
    const steps: number[] = [];
    while (current < 8) {
      current = decide({ backlog: 10_000, currentReplicas: current, nowMs: NOW, memory: null }, policy).desired;
      steps.push(current);
    }
    expect(steps).toEqual([2, 4, 8]);
  });

  it('keeps the replicas through the stabilisation window, then scales down to the highest count asked for in it', () => {
    const at = (offsetMs: number, backlog: number, memory: ScaleDownMemory | null) =>
      decide({ backlog, currentReplicas: 8, nowMs: NOW + offsetMs, memory }, sparse);
    const first = at(0, 100, null);
    expect(first).toMatchObject({ desired: 8, reason: 'stabilising', memory: { sinceMs: NOW, recent: [{ atMs: NOW, wanted: 1 }] } });
    const second = at(60_000, 300, first.memory);
    expect(second).toMatchObject({ desired: 8, reason: 'stabilising' });
    const third = at(WINDOW_MS - 1, 0, second.memory);
    expect(third).toMatchObject({ desired: 8, reason: 'stabilising' });
    expect(at(WINDOW_MS, 0, third.memory)).toMatchObject({ desired: 3, reason: 'scale_down' });
  });

  it('holds while a reading of the last window asked for the count running or more', () => {
    const low = decide({ backlog: 100, currentReplicas: 4, nowMs: NOW, memory: null }, sparse);
    const back = decide({ backlog: 400, currentReplicas: 4, nowMs: NOW + 100_000, memory: low.memory }, sparse);
    expect(back).toMatchObject({ reason: 'steady' });
    const lowAgain = decide({ backlog: 100, currentReplicas: 4, nowMs: NOW + 200_000, memory: back.memory }, sparse);
    expect(lowAgain).toMatchObject({ reason: 'stabilising' });
    const held = decide({ backlog: 100, currentReplicas: 4, nowMs: NOW + 400_000, memory: lowAgain.memory }, sparse);
    expect(held).toMatchObject({ reason: 'stabilising', desired: 4 });
    // Once the reading of 4 has left the window, the lows decide.
    expect(decide({ backlog: 100, currentReplicas: 4, nowMs: NOW + 400_001, memory: held.memory }, sparse)).toMatchObject({ reason: 'scale_down', desired: 1 });
  });

  it('follows a backlog that fell in steps a tick after each step leaves the window, not a whole window per step', () => {
    // Ticks a minute apart: an interval of a minute, and up to 10 s a tick.
    const wide = { ...policy, maxReplicas: 16, shards: 16, tickGapMs: 70_000 };
    const minute = 60_000;
    let replicas = 10;
    let memory: ScaleDownMemory | null = null;
    const counts: number[] = [];
    // 8 replicas' worth at the first minute, 1 from the next on, one tick a minute.
    for (let tick = 0; tick <= 6; tick += 1) {
      const decision = decide({ backlog: tick === 0 ? 800 : 100, currentReplicas: replicas, nowMs: NOW + tick * minute, memory }, wide);
      ({ memory } = decision);
      replicas = decision.desired;
      counts.push(replicas);
    }
    expect(counts).toEqual([10, 10, 10, 10, 10, 8, 1]);
  });

  it('sees a whole window afresh after ticks failed for longer than one, rather than scale down on the first reading', () => {
    const steady = decide({ backlog: 1000, currentReplicas: 10, nowMs: NOW, memory: null }, { ...policy, maxReplicas: 16, shards: 16 });
    // Postgres out for six minutes: no tick succeeds, then the queues read nearly empty.
    const after = decide({ backlog: 50, currentReplicas: 10, nowMs: NOW + 360_000, memory: steady.memory }, { ...policy, maxReplicas: 16, shards: 16 });
    expect(after).toMatchObject({ desired: 10, reason: 'stabilising', memory: { sinceMs: NOW + 360_000 } });
  });

  it('sees a whole window afresh after ticks failed for less than one, rather than scale down on the readings after the gap', () => {
    const wide = { ...policy, maxReplicas: 16, shards: 16 };
    let { memory } = decide({ backlog: 1000, currentReplicas: 10, nowMs: NOW, memory: null }, wide);
    // The backlog count timed out for 290 s (under a 300 s window), then read nearly empty: the
    // reading of 10 left the window at 300 s, and 10 replicas went to 1 at 310 s.
    const reasons: string[] = [];
    for (const atMs of [290_000, 300_000, 310_000]) {
      const decision = decide({ backlog: 50, currentReplicas: 10, nowMs: NOW + atMs, memory }, wide);
      ({ memory } = decision);
      reasons.push(decision.reason);
    }
    expect(reasons).toEqual(['stabilising', 'stabilising', 'stabilising']);
    expect(memory?.sinceMs).toBe(NOW + 290_000);
  });

  it.each([
    // window, gap between ticks: an interval of 10 s and a bit, or a slow tick near its 10 s deadline
    [1_000, 10_050],
    [10_000, 10_050],
    [5_000, 19_900],
  ])('scales down with a window of %d ms, shorter than the %d ms between ticks, on the tick after the first low one', (windowMs, gapMs) => {
    const short = { ...policy, scaleDownStabilizationMs: windowMs };
    let memory: ScaleDownMemory | null = null;
    const reasons: string[] = [];
    for (let tick = 0; tick < 3; tick += 1) {
      const decision = decide({ backlog: 0, currentReplicas: 4, nowMs: NOW + tick * gapMs, memory }, short);
      ({ memory } = decision);
      reasons.push(decision.reason);
    }
    expect(reasons).toEqual(['stabilising', 'scale_down', 'scale_down']);
  });

  it('sees a short window afresh after a gap longer than two healthy ticks allow', () => {
    const short = { ...policy, scaleDownStabilizationMs: 5_000 };
    const first = decide({ backlog: 0, currentReplicas: 4, nowMs: NOW, memory: null }, short);
    expect(decide({ backlog: 0, currentReplicas: 4, nowMs: NOW + 20_001, memory: first.memory }, short)).toMatchObject({
      reason: 'stabilising',
      memory: { sinceMs: NOW + 20_001 },
    });
  });

  it('scales up at once, without waiting for any window, and keeps the high reading in the window', () => {
    const low = decide({ backlog: 0, currentReplicas: 4, nowMs: NOW, memory: null }, policy);
    const up = decide({ backlog: 700, currentReplicas: 4, nowMs: NOW + 1, memory: low.memory }, policy);
    expect(up).toMatchObject({ desired: 7, reason: 'scale_up' });
    // A backlog that falls right after the scale-up does not take the replicas away within the window.
    expect(decide({ backlog: 0, currentReplicas: 7, nowMs: NOW + WINDOW_MS, memory: up.memory }, policy)).toMatchObject({ desired: 7, reason: 'stabilising' });
  });

  it('with no window, scales down on the first low reading', () => {
    expect(decide({ backlog: 0, currentReplicas: 4, nowMs: NOW, memory: null }, { ...policy, scaleDownStabilizationMs: 0 })).toMatchObject({
      desired: 1,
      reason: 'scale_down',
    });
  });
});
