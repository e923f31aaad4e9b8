import type { Metrics } from '../telemetry/metrics';

/**
 * Counts webhook requests in flight across both providers, so that overload turns into an
 * immediate 503 and provider retries instead of an unbounded queue inside the process.
 */
export interface InFlightLimit {
  /** Takes a slot, or returns false when every slot is taken. */
  tryEnter(): boolean;
  leave(): void;
}

export function createInFlightLimit(maxInFlight: number, metrics: Metrics): InFlightLimit {
  let inFlight = 0;
  return {
    tryEnter() {
      if (inFlight >= maxInFlight) return false;
      inFlight += 1;
      metrics.inFlight.set(inFlight);
      return true;
    },
    leave() {
      inFlight -= 1;
      metrics.inFlight.set(inFlight);
    },
  };
}
