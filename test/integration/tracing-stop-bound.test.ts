import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { spawnWagate } from '../support/process';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A collector that takes connections and never answers (hung, or behind a black-holed network)
 * must not hold a stopping process past its pod's grace period: the spans still to be exported
 * at SIGTERM are flushed within a bound, not within the exporter's own timeout (10 s by default).
 * The tightest grace is the ingest's: 10 s beyond SHUTDOWN_TIMEOUT_MS and the preStop pause.
 */
const SHUTDOWN_TIMEOUT_MS = 500;
const GRACE_AFTER_REQUESTS_MS = 10_000;

let pipeline: Pipeline;
let collector: Server;
const sockets: Socket[] = [];

beforeAll(async () => {
  pipeline = await startPipeline();
  collector = createServer((socket) => sockets.push(socket));
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  collector.close();
  await pipeline.stop();
});

it.each(['ingest', 'worker'])('%s stops within its grace period while the collector never answers', async (command) => {
  const child = await spawnWagate(command, {
    ...pipeline.env,
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
    // Spans wait for the shutdown's flush rather than for a scheduled export.
    OTEL_BSP_SCHEDULE_DELAY: '60000',
  });
  try {
    const id = uniqueWamid();
    // Through the pipeline's ingest for the worker, so that the worker's spans are the ones waiting.
    const target = command === 'ingest' ? child.baseUrl : pipeline.ingest.baseUrl;
    expect((await postMetaText(target, { id, from: '15550700001', text: '1 coke' })).status).toBe(200);
    if (command === 'worker') {
      await waitFor('the worker to process the message', async () =>
        (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status === 'processed');
    }
    const started = performance.now();
    child.child.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(performance.now() - started - SHUTDOWN_TIMEOUT_MS).toBeLessThan(GRACE_AFTER_REQUESTS_MS);
    expect(child.logs.some((entry) => entry.msg === 'spans not exported: the collector did not take them in time')).toBe(true);
  } finally {
    await child.stop('SIGKILL');
  }
}, 60_000);
