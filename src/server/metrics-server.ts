import type http from 'node:http';
import type { Registry } from 'prom-client';
import { listen, type ServerTimeouts } from './http-server';

/**
 * /metrics on its own port, so the exposition never sits on the public webhook port. The same
 * timeouts as the public port: this is the worker's and the autoscaler's only server, their
 * probes answer on it, and with Node's defaults (a minute for headers, no idle limit) any pod
 * the network policy lets in could hold its sockets.
 */
export function startMetricsServer(
  metrics: { registry: Registry },
  port: number,
  host: string | undefined,
  timeouts: ServerTimeouts,
  /** Extra routes (the worker's health checks, which have no public port); true when handled. */
  extra?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean,
): Promise<http.Server> {
  return listen((req, res) => {
    if (extra?.(req, res)) return;
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry
      .metrics()
      .then((body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body))
      .catch(() => res.writeHead(500).end());
  }, port, host, timeouts);
}
