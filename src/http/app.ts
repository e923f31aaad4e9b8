import type { RequestListener } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { LedgerRecorder } from '../ledger/recorder';
import { META_WEBHOOK_PATH } from '../providers/meta';
import { TWILIO_WEBHOOK_PATH } from '../providers/twilio';
import type { WebhookAdapter } from '../providers/adapter';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { createAdminAuth, createStatsHandler, type StatsDeps } from './admin-stats';
import { createReadinessHandler, livenessHandler, type HealthDeps } from './health';
import { createInFlightLimit } from './in-flight-limit';
import { createMetaVerificationHandler } from './meta-verification';
import { createWebhookHandler, type WebhookHandler } from './webhook-handler';

export const STATS_PATH = '/api/v1/whatsapp-hardened/stats';

export interface AppDeps {
  meta: WebhookAdapter;
  twilio: WebhookAdapter;
  recorder: LedgerRecorder;
  metrics: Metrics;
  log: Logger;
  maxBodyBytes: number;
  maxInFlight: number;
  maxInFlightBytes: number;
  verifyToken: string | undefined;
  health: HealthDeps;
  stats: StatsDeps;
}

/**
 * The ingest's request listener. A POST to a webhook path goes straight to its handler;
 * everything else (handshake, health, stats, path variants such as a trailing slash) goes
 * through express.
 */
export function createIngestListener(deps: AppDeps): RequestListener {
  const limit = createInFlightLimit(deps.maxInFlight, deps.maxInFlightBytes, deps.metrics);
  const webhook = (adapter: WebhookAdapter) =>
    createWebhookHandler({ adapter, recorder: deps.recorder, limit, maxBodyBytes: deps.maxBodyBytes, metrics: deps.metrics, log: deps.log });
  const webhooks = new Map<string, WebhookHandler>([
    [META_WEBHOOK_PATH, webhook(deps.meta)],
    [TWILIO_WEBHOOK_PATH, webhook(deps.twilio)],
  ]);
  const app = createExpressApp(deps, webhooks);
  return function dispatch(req, res) {
    const handler = req.method === 'POST' ? webhooks.get(pathOf(req.url)) : undefined;
    if (handler) handler(req, res);
    else app(req, res);
  };
}

function createExpressApp(deps: AppDeps, webhooks: Map<string, WebhookHandler>): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.get('/healthz', livenessHandler);
  app.get('/readyz', createReadinessHandler(deps.health));
  app.get(META_WEBHOOK_PATH, createMetaVerificationHandler(deps.verifyToken));
  app.get(STATS_PATH, createAdminAuth(deps.stats.adminToken), createStatsHandler(deps.stats));
  for (const [path, handler] of webhooks) app.post(path, (req: Request, res: Response) => handler(req, res));

  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use(createErrorHandler(deps.log));
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
    if (failure.status && failure.status >= 400 && failure.status < 500) {
      res.status(failure.status).type('text/plain').send(failure.message ?? 'bad request');
      return;
    }
    log.error({ err: failure.message, path: req.path }, 'unhandled request error');
    res.status(503).type('text/plain').send('temporarily unavailable');
  };
}
