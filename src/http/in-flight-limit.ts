import type { NextFunction, Request, Response } from 'express';
import type { Metrics } from '../telemetry/metrics';

/**
 * Refuses work beyond maxInFlight with an immediate 503, so that overload turns into
 * provider retries instead of an unbounded queue inside the process.
 */
export function createInFlightLimit(maxInFlight: number, metrics: Metrics) {
  let inFlight = 0;
  return function limitInFlight(req: Request, res: Response, next: NextFunction): void {
    if (inFlight >= maxInFlight) {
      metrics.webhookEvents.inc({ source: sourceOfPath(req.path), outcome: 'overloaded' });
      res.status(503).set('Retry-After', '1').type('text/plain').send('overloaded');
      return;
    }
    inFlight += 1;
    metrics.inFlight.set(inFlight);
    res.once('close', () => {
      inFlight -= 1;
      metrics.inFlight.set(inFlight);
    });
    next();
  };
}

export function sourceOfPath(path: string): 'whatsapp' | 'twilio' {
  return path.includes('/twilio/') ? 'twilio' : 'whatsapp';
}
