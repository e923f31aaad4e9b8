import type { ArrivalLoad } from '../lib/scenario.ts';

/** When each iteration of an open-loop load is due, in ms from the start, as k6's arrival-rate executors start them. */
export interface ArrivalSchedule {
  total: number;
  durationMs: number;
  dueMs(iteration: number): number;
}

export function arrivalSchedule(load: ArrivalLoad): ArrivalSchedule {
  if (load.executor === 'constant-arrival-rate') {
    return {
      total: Math.floor(load.rate * load.durationSeconds),
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
  /** Iterations due before the segment starts. */
  before: number;
  count: number;
}

/**
 * The rate changes linearly within a stage, so the iterations due by time t of a stage are
 * r0·t + (r1 − r0)·t² / 2T; iteration n is due where that reaches n (a quadratic's root).
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
    total: Math.floor(before + 1e-9),
    durationMs: startMs,
    dueMs(iteration) {
      const segment = segments.find((s) => iteration < s.before + s.count - 1e-9) ?? segments[segments.length - 1]!;
      const wanted = iteration - segment.before;
      const seconds = segment.durationMs / 1000;
      const a = (segment.toRate - segment.fromRate) / (2 * seconds);
      const b = segment.fromRate;
      const t = Math.abs(a) < 1e-12 ? wanted / b : (-b + Math.sqrt(Math.max(0, b * b + 4 * a * wanted))) / (2 * a);
      return segment.startMs + t * 1000;
    },
  };
}
