import { AREA_EPSILON, plannedIterations, type ArrivalLoad } from '../lib/scenario.ts';

/** When each iteration of an open-loop load is due, in ms from the start, as k6's arrival-rate executors start them. */
export interface ArrivalSchedule {
  total: number;
  durationMs: number;
  /** iteration counts from 0. */
  dueMs(iteration: number): number;
}

export function arrivalSchedule(load: ArrivalLoad): ArrivalSchedule {
  if (load.executor === 'constant-arrival-rate') {
    // As k6's constant-arrival-rate: the first iteration at the start, then one every 1/rate s.
    return {
      total: plannedIterations(load),
      durationMs: load.durationSeconds * 1000,
      dueMs: (iteration) => (iteration * 1000) / load.rate,
    };
  }
  return rampingSchedule(load.startRate, load.stages);
}

interface Segment {
  startMs: number;
  durationMs: number;
  fromRate: number;
  toRate: number;
  /** Iterations due before the segment starts (the area under the rate curve so far). */
  before: number;
  count: number;
}

/**
 * As k6's ramping-arrival-rate: the n-th iteration (counting from 1) starts when the area
 * under the rate curve reaches n, so a ramp from 0 starts nothing at t=0. The rate changes
 * linearly within a stage, so the area by time t of a stage is r0·t + (r1 − r0)·t² / 2T, and
 * iteration n is due where that reaches n (a quadratic's root).
 */
function rampingSchedule(startRate: number, stages: { target: number; durationSeconds: number }[]): ArrivalSchedule {
  const segments: Segment[] = [];
  let startMs = 0;
  let before = 0;
  let fromRate = startRate;
  for (const stage of stages) {
    const count = ((fromRate + stage.target) / 2) * stage.durationSeconds;
    segments.push({ startMs, durationMs: stage.durationSeconds * 1000, fromRate, toRate: stage.target, before, count });
    startMs += stage.durationSeconds * 1000;
    before += count;
    fromRate = stage.target;
  }
  return {
    total: plannedIterations({ executor: 'ramping-arrival-rate', startRate, stages, preAllocatedVUs: 0, maxVUs: 0 }),
    durationMs: startMs,
    dueMs(iteration) {
      const area = iteration + 1;
      const segment = segments.find((s) => s.count > 0 && area <= s.before + s.count + AREA_EPSILON) ?? segments[segments.length - 1]!;
      const wanted = area - segment.before;
      const seconds = segment.durationMs / 1000;
      const a = (segment.toRate - segment.fromRate) / (2 * seconds);
      const b = segment.fromRate;
      const t = Math.abs(a) < 1e-12 ? wanted / b : (-b + Math.sqrt(Math.max(0, b * b + 4 * a * wanted))) / (2 * a);
      return segment.startMs + Math.min(t, seconds) * 1000;
    },
  };
}
