import type { NextFunction, Request, Response } from 'express';
import type { Source } from '../config';
import type { Metrics } from '../telemetry/metrics';

const START = Symbol('wagate.requestStart');
type Timed = Request & { [START]?: { wallMs: number; mono: number } };

/** First middleware: the clock for ack latency starts before any parsing. */
export function markRequestStart(req: Request, _res: Response, next: NextFunction): void {
  (req as Timed)[START] = { wallMs: Date.now(), mono: performance.now() };
  next();
}

export function requestStartMs(req: Request): number {
  return (req as Timed)[START]?.wallMs ?? Date.now();
}

export function observeAck(metrics: Metrics, source: Source, req: Request): void {
  const start = (req as Timed)[START];
  if (start) metrics.ackDuration.observe({ source }, (performance.now() - start.mono) / 1000);
}
