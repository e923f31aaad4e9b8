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

/**
 * Reserves a body's bytes beyond the upfront reservation as they arrive. When the budget cannot
 * hold them, the read is stopped with BodyBudgetExceeded. Returns what is reserved in all, to
 * give back when the request is done.
 */
export function reserveAsBytesArrive(req: IncomingMessage, limit: InFlightLimit, upfront: number): () => number {
  let reserved = upfront;
  // A body that fits its upfront reservation needs no accounting: most webhooks.
  if (upfront < UPFRONT_RESERVATION_BYTES) return () => reserved;
  let received = 0;
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    while (received > reserved) {
      if (!limit.tryGrow(GROWTH_STEP_BYTES)) {
        req.removeListener('data', onData);
        // The reader listens for errors while it reads, and stops (and pauses the request) on this one.
        req.emit('error', new BodyBudgetExceeded());
        return;
      }
      reserved += GROWTH_STEP_BYTES;
    }
  };
  req.on('data', onData);
  req.once('end', () => req.removeListener('data', onData));
  return () => reserved;
}
