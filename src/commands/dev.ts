import { META_WEBHOOK_PATH } from '../webhooks/meta';
import { TWILIO_WEBHOOK_PATH } from '../webhooks/twilio';

/** `wagate dev` listens on loopback unless HOST says otherwise: a development gateway is nobody else's business. */
export const DEV_DEFAULTS = { NODE_ENV: 'development', HOST: '127.0.0.1' } as const;

export function readyLine(host: string | undefined, port: number, ingestMetricsPort: number, workerMetricsPort: number): string {
  const shown = host === undefined || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const base = `http://${shown}:${port}`;
  return `wagate dev ready: Meta webhooks ${base}${META_WEBHOOK_PATH}, Twilio webhooks ${base}${TWILIO_WEBHOOK_PATH}, ` +
    `health ${base}/readyz, metrics http://${shown}:${ingestMetricsPort}/metrics (ingest) and http://${shown}:${workerMetricsPort}/metrics (worker)`;
}
