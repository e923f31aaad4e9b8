import type { IncomingMessage } from 'node:http';
import proxyAddr from 'proxy-addr';

/**
 * Whether a request's own traceparent may parent its server span: only from a proxy in
 * TRACE_TRUSTED_PROXIES (a tracing ingress or mesh that replaces a client's header). Meta and
 * Twilio send none, and the header is read before the signature check, so from anyone else it
 * would choose the trace and, under a parent-based sampler or traceidratio (which decides by
 * the trace id), force every request it rides on to be traced. Not TRUSTED_PROXIES: an ingress
 * listed there for the admin rate limit may pass a client's header on as it came. Such a
 * request gets a trace of its own, linked to the caller's.
 */
export function callerTraceTrust(trustedProxies: readonly string[]): (req: IncomingMessage) => boolean {
  if (trustedProxies.length === 0) return () => false;
  const trusts = proxyAddr.compile([...trustedProxies]);
  return (req) => trusts(req.socket.remoteAddress ?? '', 0);
}
