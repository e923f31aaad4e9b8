import http from 'node:http';
import type { RequestListener } from 'node:http';

export interface ServerTimeouts {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** The longest a handler may keep a request before it answers: the socket's idle timer waits longer. */
  answerWaitMs?: number;
}

/** Past the handler's own deadline: its answer is written before the idle timer could cut it. */
const ANSWER_MARGIN_MS = 5000;

/** Timeouts on every phase, so a slow or idle client cannot hold a socket indefinitely. */
export function listen(handler: RequestListener, port: number, host: string | undefined, timeouts: ServerTimeouts): Promise<http.Server> {
  const server = http.createServer(
    {
      requestTimeout: timeouts.requestTimeoutMs,
      // Node checks header and request deadlines on this interval (30 s by default), which
      // would let a slow client outlive a shorter timeout.
      connectionsCheckingInterval: Math.min(1000, timeouts.headersTimeoutMs),
    },
    handler,
  );
  // Node answers Expect: 100-continue with a 100 before the handler has looked at the request,
  // so a request refused without its body (overloaded, too large, no such path) was sent it
  // all the same. Handled as a request, it is told to go on only when its body is read.
  server.on('checkContinue', handler);
  server.headersTimeout = timeouts.headersTimeoutMs;
  server.keepAliveTimeout = timeouts.keepAliveTimeoutMs;
  // A socket silent this long is cut (a client that stopped reading its answer). Not sooner than
  // the handler answers: a request waiting for a slow commit was reset, where its deadline
  // answers 503 with Retry-After, and behind a proxy the provider saw a 502.
  server.timeout = Math.max(timeouts.requestTimeoutMs, (timeouts.answerWaitMs ?? 0) + ANSWER_MARGIN_MS);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** Stops accepting, lets in-flight requests finish, then cuts what is left at the deadline. */
export async function closeServer(server: http.Server, deadlineMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // A keep-alive connection turns idle once its last response is sent; close it then rather
  // than waiting for the keep-alive timeout.
  const sweeper = setInterval(() => server.closeIdleConnections(), 25);
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), deadlineMs);
  await closed;
  clearInterval(sweeper);
  clearTimeout(timer);
}

/** For servers with nothing worth finishing (metrics, health): close every connection now. */
export function closeServerNow(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

export function boundPort(server: http.Server): number {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}
