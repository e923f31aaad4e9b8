import type { IncomingMessage } from 'node:http';
import getRawBody from 'raw-body';

/** Why a body could not be read, with the answer it gets; null status means nobody is listening. */
export interface BodyFailure {
  outcome: 'too_large' | 'aborted' | 'bad_request' | 'overloaded';
  status: number | null;
  message: string;
}

export type BodyResult = { ok: true; body: Buffer } | { ok: false; failure: BodyFailure };

/** The error a body read stops with when the body has not arrived in time (answered 408). */
class BodyTimedOut extends Error {
  readonly type = 'body.timeout';
  constructor(timeoutMs: number) {
    super(`the request body did not arrive within ${timeoutMs} ms`);
  }
}

/**
 * Reads the exact bytes received, up to maxBytes, within timeoutMs. Signatures are computed
 * over those bytes, so nothing is decoded or decompressed: a compressed body is refused rather
 * than guessed at. A request holds one of MAX_IN_FLIGHT's slots while its body arrives (its
 * signature cannot be checked before): a provider sends a webhook's few kilobytes at once, so
 * a body still dribbling in after timeoutMs gives its slot back, rather than holding it for the
 * whole HTTP_REQUEST_TIMEOUT_MS while thousands like it keep genuine webhooks out.
 */
export async function readRawBody(req: IncomingMessage, maxBytes: number, timeoutMs: number, sendContinue: () => void): Promise<BodyResult> {
  // An empty header, as some proxies send, names no coding: the bytes are as sent.
  const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase() || 'identity';
  if (encoding !== 'identity') {
    req.resume();
    return { ok: false, failure: { outcome: 'bad_request', status: 415, message: `content-encoding "${encoding}" is not supported` } };
  }
  // A client that waits to be told before it sends its body (Expect: 100-continue) is told only
  // past the refusals that need no body: one announced too large is refused unsent.
  if (/^100-continue$/i.test(req.headers.expect ?? '')) {
    if (Number(req.headers['content-length']) > maxBytes) return { ok: false, failure: tooLarge(maxBytes) };
    sendContinue();
  }
  // The reader stops (and pauses the request) on this error. Emitted only while it listens:
  // an 'error' nobody listens for would be thrown and end the process.
  const deadline = setTimeout(() => {
    if (req.listenerCount('error') > 0) req.emit('error', new BodyTimedOut(timeoutMs));
  }, timeoutMs);
  try {
    return { ok: true, body: await getRawBody(req, { limit: maxBytes, length: req.headers['content-length'] }) };
  } catch (error) {
    return { ok: false, failure: describeBodyError(error as { type?: string; status?: number }, maxBytes) };
  } finally {
    clearTimeout(deadline);
  }
}

function describeBodyError(error: { type?: string; status?: number }, maxBytes: number): BodyFailure {
  switch (error.type) {
    case 'body.budget.exceeded':
      // Its body is not read to the end: the connection is closed after the answer.
      return { outcome: 'overloaded', status: 503, message: 'overloaded' };
    case 'entity.too.large':
      return tooLarge(maxBytes);
    case 'body.timeout':
      // Its body is not read to the end: the connection is closed after the answer.
      return { outcome: 'bad_request', status: 408, message: 'request body not received in time' };
    case 'request.aborted':
      return { outcome: 'aborted', status: null, message: 'client aborted the request' };
    case 'request.size.invalid':
      return { outcome: 'bad_request', status: 400, message: 'body length does not match Content-Length' };
    default:
      return { outcome: 'bad_request', status: error.status && error.status < 500 ? error.status : 400, message: 'could not read the request body' };
  }
}

function tooLarge(maxBytes: number): BodyFailure {
  return { outcome: 'too_large', status: 413, message: `body exceeds ${maxBytes} bytes` };
}
