import type { NextFunction, Request, Response } from 'express';
import type { Source } from '../config';
import type { Metrics } from '../telemetry/metrics';

const START = Symbol('wagate.requestStart');
type Timed = Request & { [START]?: { wallMs: number; mono: number } };

/** First middleware: the clock for ack latency starts before any parsing; every answer is counted. */
export function createRequestTiming(metrics: Metrics, source: Source) {
  return function markRequestStart(req: Request, res: Response, next: NextFunction): void {
    (req as Timed)[START] = { wallMs: Date.now(), mono: performance.now() };
    res.once('finish', () => metrics.webhookRequests.inc({ source, code: String(res.statusCode) }));
    next();
  };
}

export function requestStartMs(req: Request): number {
  return (req as Timed)[START]?.wallMs ?? Date.now();
}

export function observeAck(metrics: Metrics, source: Source, req: Request): void {
  const start = (req as Timed)[START];
  if (start) metrics.ackDuration.observe({ source }, (performance.now() - start.mono) / 1000);
}
