import type { IncomingMessage, ServerResponse } from 'node:http';

export interface ProbeAnswer {
  /** The probe passes: 200, else 503. */
  ready: boolean;
  body: unknown;
}

/**
 * /healthz and /readyz for a process without a public port (worker, autoscaler), served
 * beside /metrics. Liveness answers at once, from what the process knows (alive unless told);
 * readiness asks the process. True when handled.
 */
export function probeRoutes(
  readiness: () => Promise<ProbeAnswer>,
  liveness: () => ProbeAnswer = () => ({ ready: true, body: { status: 'ok' } }),
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (req.url === '/healthz') {
      const { ready, body } = liveness();
      res.writeHead(ready ? 200 : 503, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      return true;
    }
    if (req.url !== '/readyz') return false;
    readiness().then(
      ({ ready, body }) => res.writeHead(ready ? 200 : 503, { 'Content-Type': 'application/json' }).end(JSON.stringify(body)),
      (error: Error) => res.writeHead(503, { 'Content-Type': 'application/json' }).end(JSON.stringify({ status: 'not ready', error: error.message })),
    );
    return true;
  };
}
