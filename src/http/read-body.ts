import type { IncomingMessage } from 'node:http';
import getRawBody from 'raw-body';

/** Why a body could not be read, with the answer it gets; null status means nobody is listening. */
export interface BodyFailure {
  outcome: 'too_large' | 'aborted' | 'bad_request' | 'overloaded';
  status: number | null;
  message: string;
}

export type BodyResult = { ok: true; body: Buffer } | { ok: false; failure: BodyFailure };

/**
 * Reads the exact bytes received, up to maxBytes. Signatures are computed over those bytes,
 * so nothing is decoded or decompressed: a compressed body is refused rather than guessed at.
 */
export async function readRawBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity') {
    req.resume();
    return { ok: false, failure: { outcome: 'bad_request', status: 415, message: `content-encoding "${encoding}" is not supported` } };
  }
  try {
    return { ok: true, body: await getRawBody(req, { limit: maxBytes, length: req.headers['content-length'] }) };
  } catch (error) {
    return { ok: false, failure: describeBodyError(error as { type?: string; status?: number }, maxBytes) };
  }
}

function describeBodyError(error: { type?: string; status?: number }, maxBytes: number): BodyFailure {
  switch (error.type) {
    case 'body.budget.exceeded':
      // Its body is not read to the end: the connection is closed after the answer.
      return { outcome: 'overloaded', status: 503, message: 'overloaded' };
    case 'entity.too.large':
      return { outcome: 'too_large', status: 413, message: `body exceeds ${maxBytes} bytes` };
    case 'request.aborted':
      return { outcome: 'aborted', status: null, message: 'client aborted the request' };
    case 'request.size.invalid':
      return { outcome: 'bad_request', status: 400, message: 'body length does not match Content-Length' };
    default:
      return { outcome: 'bad_request', status: error.status && error.status < 500 ? error.status : 400, message: 'could not read the request body' };
  }
}
