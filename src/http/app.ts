import express, { type NextFunction, type Request, type Response } from 'express';
import type { LedgerRecorder } from '../ledger/recorder';
import { META_WEBHOOK_PATH } from '../providers/meta';
import { TWILIO_WEBHOOK_PATH } from '../providers/twilio';
import type { WebhookAdapter } from '../providers/adapter';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { createAdminAuth, createStatsHandler, type StatsDeps } from './admin-stats';
import { createReadinessHandler, livenessHandler, type HealthDeps } from './health';
import { createInFlightLimit, sourceOfPath } from './in-flight-limit';
import { createMetaVerificationHandler } from './meta-verification';
import { createRequestTiming, observeAck } from './request-timing';
import { createWebhookHandler } from './webhook-handler';

export const STATS_PATH = '/api/v1/whatsapp-hardened/stats';

export interface AppDeps {
  meta: WebhookAdapter;
  twilio: WebhookAdapter;
  recorder: LedgerRecorder;
  metrics: Metrics;
  log: Logger;
  maxBodyBytes: number;
  maxInFlight: number;
  verifyToken: string | undefined;
  health: HealthDeps;
  stats: StatsDeps;
}

export function createIngestApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Every body is read raw: signatures are computed over the exact bytes received.
  const rawBody = express.raw({ type: () => true, limit: deps.maxBodyBytes });
  const webhook = (adapter: WebhookAdapter) =>
    createWebhookHandler({ adapter, recorder: deps.recorder, metrics: deps.metrics, log: deps.log });

  app.get('/healthz', livenessHandler);
  app.get('/readyz', createReadinessHandler(deps.health));
  app.get(META_WEBHOOK_PATH, createMetaVerificationHandler(deps.verifyToken));
  app.get(STATS_PATH, createAdminAuth(deps.stats.adminToken), createStatsHandler(deps.stats));

  const limit = createInFlightLimit(deps.maxInFlight, deps.metrics);
  app.post(META_WEBHOOK_PATH, createRequestTiming(deps.metrics, 'whatsapp'), limit, rawBody, webhook(deps.meta));
  app.post(TWILIO_WEBHOOK_PATH, createRequestTiming(deps.metrics, 'twilio'), limit, rawBody, webhook(deps.twilio));

  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use(createErrorHandler(deps));
  return app;
}

/** The one place where errors outside the webhook handler become HTTP answers. */
function createErrorHandler(deps: AppDeps) {
  return function handleError(error: unknown, req: Request, res: Response, _next: NextFunction): void {
    const failure = error as { type?: string; status?: number; message?: string };
    const source = sourceOfPath(req.path);
    if (failure.type === 'entity.too.large') {
      deps.metrics.webhookEvents.inc({ source, outcome: 'too_large' });
      observeAck(deps.metrics, source, req);
      res.status(413).type('text/plain').send(`body exceeds ${deps.maxBodyBytes} bytes`);
      return;
    }
    if (failure.type === 'request.aborted') {
      deps.metrics.webhookEvents.inc({ source, outcome: 'aborted' });
      return;
    }
    if (failure.status && failure.status >= 400 && failure.status < 500) {
      res.status(failure.status).type('text/plain').send(failure.message ?? 'bad request');
      return;
    }
    deps.log.error({ err: failure.message, path: req.path }, 'unhandled request error');
    res.status(503).type('text/plain').send('temporarily unavailable');
  };
}
