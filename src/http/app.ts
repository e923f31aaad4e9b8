import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { context, trace } from '@opentelemetry/api';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { isWagateError } from '../errors';
import type { LedgerRecorder } from '../ledger/recorder';
import { META_WEBHOOK_PATH } from '../webhooks/meta';
import { TWILIO_WEBHOOK_PATH } from '../webhooks/twilio';
import type { WebhookAdapter } from '../webhooks/adapter';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { endServerSpan, nameServerSpan, startServerSpan } from '../telemetry/server-span';
import { isWebhookPost } from '../webhooks/paths';
import { createAdminRateLimit } from './admin-rate-limit';
import { createAdminAuth, createStatsHandler, type StatsDeps } from './admin-stats';
import { callerTraceTrust } from './caller-trace';
import { createLivenessHandler, createReadinessHandler, type HealthDeps } from './health';
import { createInFlightLimit } from './in-flight-limit';
import { createMetaVerificationHandler } from './meta-verification';
import { createWebhookHandler, type WebhookHandler } from './webhook-handler';

export const STATS_PATH = '/api/v1/whatsapp-hardened/stats';

/** Probes, as express routes them (any letter case, one trailing slash): untraced, since they would drown the traces that matter. */
const PROBE_PATH = /^\/(healthz|readyz)\/?$/i;

export interface AppDeps {
  meta: WebhookAdapter;
  twilio: WebhookAdapter;
  recorder: LedgerRecorder;
  metrics: Metrics;
  log: Logger;
  maxBodyBytes: number;
  /** WEBHOOK_BODY_TIMEOUT_MS: the longest a webhook's body may take to arrive, holding its in-flight slot. */
  bodyTimeoutMs: number;
  maxInFlight: number;
  maxInFlightBytes: number;
  verifyToken: string | undefined;
  health: HealthDeps;
  stats: StatsDeps;
  /** The warm-up rehearsal's listener: its webhooks are never traced. */
  untraced?: boolean;
  /** TRACE_TRUSTED_PROXIES: the proxies whose traceparent parents a request's server span (callerTraceTrust). */
  traceTrustedProxies?: string[];
}

/** One row of the route table: an express route, or a webhook POST that also has the fast path. */
type Route =
  | { method: 'GET'; path: string; handlers: RequestHandler[] }
  | { method: 'POST'; path: string; webhook: WebhookHandler };

/** Every route of the ingest port, at a glance. */
function routeTable(deps: AppDeps, webhook: (adapter: WebhookAdapter, path: string) => WebhookHandler): Route[] {
  return [
    { method: 'GET', path: '/healthz', handlers: [createLivenessHandler(deps.health)] },
    { method: 'GET', path: '/readyz', handlers: [createReadinessHandler(deps.health)] },
    { method: 'GET', path: META_WEBHOOK_PATH, handlers: [createMetaVerificationHandler(deps.verifyToken)] },
    { method: 'GET', path: STATS_PATH, handlers: [createAdminRateLimit(deps.stats.rateLimit), createAdminAuth(deps.stats.adminToken), createStatsHandler(deps.stats)] },
    { method: 'POST', path: META_WEBHOOK_PATH, webhook: webhook(deps.meta, META_WEBHOOK_PATH) },
    { method: 'POST', path: TWILIO_WEBHOOK_PATH, webhook: webhook(deps.twilio, TWILIO_WEBHOOK_PATH) },
  ];
}

/**
 * The ingest's request listener. Fast path: a POST to a webhook's exact path goes straight
 * to its handler on node's own request and response, because express's routing and response
 * helpers cost more CPU per request than the signature check, the parse and the ledger
 * together. Everything else goes through express, path variants of a webhook POST (a
 * trailing slash) included, which reach the same handler.
 */
export function createIngestListener(deps: AppDeps): RequestListener {
  const limit = createInFlightLimit(deps.maxInFlight, deps.maxInFlightBytes, deps.metrics);
  const trustsCallerTrace = callerTraceTrust(deps.traceTrustedProxies ?? []);
  const routes = routeTable(deps, (adapter, path) =>
    createWebhookHandler({
      adapter, path, recorder: deps.recorder, limit, maxBodyBytes: deps.maxBodyBytes, bodyTimeoutMs: deps.bodyTimeoutMs, metrics: deps.metrics, log: deps.log, untraced: deps.untraced,
      trustsCallerTrace,
    }),
  );
  const fastPath = new Map(routes.flatMap((route) => (route.method === 'POST' ? [[route.path, route.webhook] as const] : [])));
  const app = createExpressApp(routes, deps.stats.rateLimit.trustedProxies ?? [], deps.log);
  return function dispatch(req, res) {
    // Stopping: each answer closes its connection, so a proxy's pooled keep-alive connection
    // is not reused for a request that the deadline would then cut off unanswered.
    if (deps.health.isDraining()) res.setHeader('connection', 'close');
    const path = pathOf(req.url);
    const handler = req.method === 'POST' ? fastPath.get(path) : undefined;
    if (handler) handler(req, res);
    // A webhook POST on a path variant opens its server span in its handler, as on the fast path.
    else if (PROBE_PATH.test(path) || isWebhookPost(req.method, req.url)) app(req, res);
    else answerTraced(app, req, res, trustsCallerTrace(req));
  };
}

/**
 * Opens the server span of a request that express answers (Meta's verification GET, the stats,
 * a 404 or a 405). The HTTP instrumentation does not handle incoming requests (src/telemetry/
 * tracing.ts): to leave the webhook POSTs alone it still entered a context and bound each one's
 * request and response to it, on every request. Express's own instrumentation adds the handler
 * spans under this one.
 */
function answerTraced(app: express.Express, req: IncomingMessage, res: ServerResponse, trustsCaller: boolean): void {
  const method = req.method ?? 'GET';
  const span = startServerSpan(req, method, trustsCaller);
  if (!span.isRecording()) return void app(req, res);
  res.once('close', () => {
    nameServerSpan(span, method, (req as Request).route?.path as string | undefined);
    endServerSpan(span, res.statusCode, res.writableFinished);
  });
  context.with(trace.setSpan(context.active(), span), () => app(req, res));
}

function createExpressApp(routes: Route[], trustedProxies: string[], log: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // req.ip is the client as the trusted proxies name it in X-Forwarded-For; with none trusted,
  // the socket's address, since anyone can write that header.
  app.set('trust proxy', trustedProxies.length > 0 ? trustedProxies : false);
  for (const route of routes) {
    if (route.method === 'GET') app.get(route.path, ...route.handlers);
    else app.post(route.path, (req: Request, res: Response) => route.webhook(req, res));
  }
  // A known path asked with a method it does not take: 405 and what it takes (HEAD with GET),
  // not a 404 that reads as a wrong URL. OPTIONS is answered with what it takes.
  const allowed = new Map<string, string[]>();
  for (const route of routes) allowed.set(route.path, [...(allowed.get(route.path) ?? []), ...(route.method === 'GET' ? ['GET', 'HEAD'] : ['POST'])]);
  for (const [path, methods] of allowed) {
    app.all(path, (req: Request, res: Response) => {
      if (req.method === 'OPTIONS') return void res.status(204).set('Allow', [...methods, 'OPTIONS'].join(', ')).end();
      res.status(405).set('Allow', methods.join(', ')).json({ error: `method ${req.method} not allowed; use ${methods.join(', ')}` });
    });
  }
  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use(createErrorHandler(log));
  return app;
}

function pathOf(url: string | undefined): string {
  if (!url) return '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** The one place where errors outside the webhook handlers become HTTP answers. */
function createErrorHandler(log: Logger) {
  return function handleError(error: unknown, req: Request, res: Response, _next: NextFunction): void {
    const failure = error as { status?: number; message?: string };
    // Ours carry their status in their code; express's own (a body parser's 413) carry it as `status`.
    const status = isWagateError(error) ? error.httpStatus : failure.status;
    if (status && status >= 400 && status < 500) {
      res.status(status).type('text/plain').send(failure.message ?? 'bad request');
      return;
    }
    log.error({ err: failure.message, path: req.path }, 'unhandled request error');
    res.status(503).type('text/plain').send('temporarily unavailable');
  };
}
