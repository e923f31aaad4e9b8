import type { Request, Response } from 'express';
import { isDatabaseUnavailable } from '../db/client';
import type { LedgerRecorder } from '../ledger/recorder';
import type { LedgerItem } from '../ledger/items';
import { malformedItem, type InboundRequest, type WebhookAdapter } from '../providers/adapter';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { withSpan } from '../telemetry/spans';
import { currentTraceparent } from '../telemetry/traceparent';
import { requestStartMs, observeAck } from './request-timing';

export interface WebhookHandlerDeps {
  adapter: WebhookAdapter;
  recorder: LedgerRecorder;
  metrics: Metrics;
  log: Logger;
}

/**
 * Verify, parse, record, answer. The signature is checked on the raw bytes before anything
 * reads them; the answer waits for the ledger commit of every item in the body.
 */
/**
 * A parser bug must not turn a genuine, signed delivery into endless provider retries:
 * the body is kept as malformed (200), with the raw bytes, for an operator to look at.
 */
function toItemsSafely(adapter: WebhookAdapter, inbound: InboundRequest, receivedAtMs: number, log: Logger): LedgerItem[] {
  try {
    return adapter.toItems(inbound, receivedAtMs);
  } catch (error) {
    log.error({ err: (error as Error).message, source: adapter.source }, 'parser failed on a signed body; recording it as malformed');
    return [malformedItem(adapter.source, inbound.rawBody, 'the gateway could not parse this body')];
  }
}

export function createWebhookHandler(deps: WebhookHandlerDeps) {
  const { adapter, recorder, metrics, log } = deps;
  const source = adapter.source;
  return async function handleWebhook(req: Request, res: Response): Promise<void> {
    const inbound = {
      rawBody: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
      header: (name: string) => req.get(name),
      originalUrl: req.originalUrl,
    };
    if (!adapter.verify(inbound)) {
      metrics.webhookEvents.inc({ source, outcome: 'invalid_signature' });
      observeAck(metrics, source, req);
      res.status(401).type('text/plain').send('invalid signature');
      return;
    }
    const receivedAtMs = requestStartMs(req);
    const items = toItemsSafely(adapter, inbound, receivedAtMs, log);
    try {
      if (items.length === 0) metrics.webhookEvents.inc({ source, outcome: 'ignored' });
      const outcomes = await withSpan('wagate.ledger.record', { 'wagate.source': source, 'wagate.items': items.length, 'db.system': 'postgresql' }, () =>
        recorder.record({ items, receivedAtMs, traceparent: currentTraceparent() }),
      );
      for (const outcome of outcomes) metrics.webhookEvents.inc({ source, outcome });
    } catch (error) {
      metrics.webhookEvents.inc({ source, outcome: 'unavailable' });
      const code = (error as { code?: string }).code;
      if (!isDatabaseUnavailable(error)) log.error({ err: (error as Error).message, code, source }, 'ledger write failed');
      else log.warn({ code, source }, 'database unavailable; answering 503 so the provider retries');
      observeAck(metrics, source, req);
      res.status(503).set('Retry-After', '5').type('text/plain').send('temporarily unavailable');
      return;
    }
    observeAck(metrics, source, req);
    res.status(200).type(adapter.ack.contentType).send(adapter.ack.body);
  };
}
