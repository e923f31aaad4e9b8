import type { Config } from '../config';
import { ConfigError } from '../errors';
import { META_WEBHOOK_PATH } from '../webhooks/meta';
import { TWILIO_WEBHOOK_PATH } from '../webhooks/twilio';

/** `wagate dev` listens on loopback unless HOST says otherwise: a development gateway is nobody else's business. */
export const DEV_DEFAULTS = { NODE_ENV: 'development', HOST: '127.0.0.1' } as const;

/**
 * A development command's environment: DEV_DEFAULTS under the variables set. An empty variable
 * counts as unset, as loadConfig reads it: `HOST=` passed on by a compose file replaced the
 * default, and dev listened on every interface while its ready line said loopback.
 */
export function withDevDefaults(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const set = Object.entries(env).filter(([, value]) => value !== '');
  return { ...DEV_DEFAULTS, ...Object.fromEntries(set) };
}

export function readyLine(host: string | undefined, port: number, ingestMetricsPort: number, workerMetricsPort: number): string {
  const shown = host === undefined || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const base = `http://${shown}:${port}`;
  return `wagate dev ready: Meta webhooks ${base}${META_WEBHOOK_PATH}, Twilio webhooks ${base}${TWILIO_WEBHOOK_PATH}, ` +
    `health ${base}/readyz, metrics http://${shown}:${ingestMetricsPort}/metrics (ingest) and http://${shown}:${workerMetricsPort}/metrics (worker)`;
}

/**
 * One process, two metrics endpoints: the worker's sits on the port after the ingest's. Checked
 * before anything starts: past 65535, or on PORT, the worker failed with Node's own error after
 * the ingest was already listening.
 */
export function devWorkerMetricsPort(config: Pick<Config, 'PORT' | 'METRICS_PORT'>): number {
  if (config.METRICS_PORT === 0) return 0;
  const port = config.METRICS_PORT + 1;
  if (port > 65_535) throw new ConfigError(`METRICS_PORT: wagate dev puts the worker's metrics on METRICS_PORT + 1, which must be a port (at most 65535); use a lower METRICS_PORT, or 0 for any free ports`);
  if (port === config.PORT) throw new ConfigError(`METRICS_PORT: wagate dev puts the worker's metrics on METRICS_PORT + 1, which is PORT; choose a METRICS_PORT that leaves the port after it free`);
  return port;
}
