import type { Metrics } from '../telemetry/metrics';

/**
 * Counts webhook requests in flight across both providers, and the bytes their bodies may
 * hold, so that overload turns into an immediate 503 and provider retries instead of an
 * unbounded queue inside the process. Bodies are buffered before the signature check, so the
 * byte budget is what bounds the memory unauthenticated clients can make us hold.
 */
export interface InFlightLimit {
  /** Takes a slot and reserves `bytes`, or returns false when either is used up. */
  tryEnter(bytes: number): boolean;
  /** Reserves `bytes` more for a request already in (a body larger than its first reservation), or returns false. */
  tryGrow(bytes: number): boolean;
  /** Gives back the slot and every byte reserved with it. */
  leave(bytes: number): void;
}

export function createInFlightLimit(maxInFlight: number, maxInFlightBytes: number, metrics: Metrics): InFlightLimit {
  let inFlight = 0;
  let bytesInFlight = 0;
  return {
    tryEnter(bytes) {
      if (inFlight >= maxInFlight || bytesInFlight + bytes > maxInFlightBytes) return false;
      inFlight += 1;
      bytesInFlight += bytes;
      metrics.inFlight.set(inFlight);
      return true;
    },
    tryGrow(bytes) {
      if (bytesInFlight + bytes > maxInFlightBytes) return false;
      bytesInFlight += bytes;
      return true;
    },
    leave(bytes) {
      inFlight -= 1;
      bytesInFlight -= bytes;
      metrics.inFlight.set(inFlight);
    },
  };
}
