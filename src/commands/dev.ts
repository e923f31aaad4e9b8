import type { Config } from '../config';
import type { Logger } from '../telemetry/logger';
import { META_WEBHOOK_PATH } from '../webhooks/meta';
import { TWILIO_WEBHOOK_PATH } from '../webhooks/twilio';
import { startIngest } from './ingest';
import { runMigrate } from './migrate';
import { startWorker } from './worker';

/** `wagate dev` listens on loopback unless HOST says otherwise: a development gateway is nobody else's business. */
export const DEV_DEFAULTS = { NODE_ENV: 'development', HOST: '127.0.0.1' } as const;

/** migrate, ingest and worker in one process; prints one line with the URLs once webhooks are accepted. */
export async function runDev(config: Config, log: Logger): Promise<{ stop(): Promise<void> }> {
  await runMigrate(config, log);
  const ingest = await startIngest(config, log);
  // One process, two metrics endpoints: the worker's sits on the next port.
  const worker = await startWorker({ ...config, METRICS_PORT: config.METRICS_PORT === 0 ? 0 : config.METRICS_PORT + 1 }, log);
  process.stdout.write(`${readyLine(config.HOST, ingest.port, ingest.metricsPort, worker.metricsPort)}\n`);
  return {
    async stop() {
      await ingest.stop();
      await worker.stop();
    },
  };
}

export function readyLine(host: string, port: number, ingestMetricsPort: number, workerMetricsPort: number): string {
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const base = `http://${shown}:${port}`;
  return `wagate dev ready: Meta webhooks ${base}${META_WEBHOOK_PATH}, Twilio webhooks ${base}${TWILIO_WEBHOOK_PATH}, ` +
    `health ${base}/readyz, metrics http://${shown}:${ingestMetricsPort}/metrics (ingest) and http://${shown}:${workerMetricsPort}/metrics (worker)`;
}
