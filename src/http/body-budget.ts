import type { IncomingMessage } from 'node:http';
import type { InFlightLimit } from './in-flight-limit';

/**
 * What a request reserves of MAX_IN_FLIGHT_BYTES before a byte of its body has arrived: its
 * declared length up to this much (a webhook is a few kilobytes), or this much for a larger or
 * unannounced body, whose remaining bytes are reserved only as they arrive. Reserving a declared
 * 3 MiB up front let about 90 idle connections that send nothing take the whole budget, and every
 * genuine webhook was answered 503, before any signature could be checked.
 */
export const UPFRONT_RESERVATION_BYTES = 64 * 1024;
/** Bytes beyond the first reservation are reserved in steps of this size, not per chunk. */
const GROWTH_STEP_BYTES = 64 * 1024;

/** The error a body read stops with when the budget cannot hold its next bytes (read-body answers 503). */
export class BodyBudgetExceeded extends Error {
  readonly type = 'body.budget.exceeded';
  constructor() {
    super('the bodies in flight would exceed MAX_IN_FLIGHT_BYTES');
  }
}

/**
 * The bytes to reserve before reading: the declared length (the reader refuses a body that
 * differs from it) or the body limit when none is declared, at most the upfront reservation.
 * A declared length over the limit reserves nothing: it is refused with 413 before a byte is read.
 */
export function upfrontReservation(req: IncomingMessage, maxBodyBytes: number): number {
  const declared = Number(req.headers['content-length']);
  const expected = !Number.isSafeInteger(declared) || declared < 0 ? maxBodyBytes : declared > maxBodyBytes ? 0 : declared;
  return Math.min(expected, UPFRONT_RESERVATION_BYTES);
}

/** Whether a body may be large: its length undeclared (chunked), or declared at least the upfront reservation. */
export function mayBeLarge(req: IncomingMessage): boolean {
  const declared = Number(req.headers['content-length']);
  return !Number.isSafeInteger(declared) || declared < 0 || declared >= UPFRONT_RESERVATION_BYTES;
}

export interface ArrivingReservation {
  /** Stops counting (the request is answered; bytes still arriving are not this budget's) and returns what is reserved in all. */
  finish(): number;
}

/**
 * Reserves a body's bytes beyond the upfront reservation as they arrive, while the body is
 * being read. When the budget cannot hold them, the read is stopped with BodyBudgetExceeded.
 * finish() ends the counting whatever became of the read (answered 415 with the body unread,
 * refused 401, done), so that no byte arriving later is charged and never given back.
 */
export function reserveAsBytesArrive(req: IncomingMessage, limit: InFlightLimit, upfront: number): ArrivingReservation {
  let reserved = upfront;
  // A body that fits its upfront reservation needs no accounting: most webhooks.
  if (upfront < UPFRONT_RESERVATION_BYTES) return { finish: () => reserved };
  let received = 0;
  const stop = () => req.removeListener('data', onData);
  function onData(chunk: Buffer): void {
    received += chunk.length;
    while (received > reserved) {
      if (!limit.tryGrow(GROWTH_STEP_BYTES)) {
        stop();
        // The reader stops (and pauses the request) on this error. Emitted only while it listens:
        // an 'error' nobody listens for would be thrown and end the process.
        if (req.listenerCount('error') > 0) req.emit('error', new BodyBudgetExceeded());
        return;
      }
      reserved += GROWTH_STEP_BYTES;
    }
  }
  req.on('data', onData);
  return {
    finish() {
      stop();
      return reserved;
    },
  };
}
