import { startPipeline, type Pipeline } from '../support/pipeline';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

/**
 * SIGTERM must end inside the worker pod's grace period (the chart's drainTimeoutSeconds + 15 s)
 * even when the broker stops answering: otherwise the kubelet kills the process in the middle
 * of closing, and the chart's promise of a bounded stop does not hold.
 */
const DRAIN_TIMEOUT_MS = 1000;
/** The chart's grace beyond the drain timeout. */
const GRACE_AFTER_DRAIN_MS = 15_000;

let pipeline: Pipeline;
let proxy: TcpProxy;

beforeAll(async () => {
  pipeline = await startPipeline();
  const broker = new URL(pipeline.env.AMQP_URL!);
  proxy = await startTcpProxy(Number(broker.port || 5672), broker.hostname);
});

afterAll(async () => {
  proxy.setMode('forward');
  await pipeline.stop();
  await proxy.close();
});

it('ends within the grace period when the broker stops answering', async () => {
  const viaProxy = new URL(pipeline.env.AMQP_URL!);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  // A heartbeat longer than the test, so that only the stop's own bounds end the hung connections.
  viaProxy.searchParams.set('heartbeat', '120');
  const worker = await pipeline.startWorker({ AMQP_URL: viaProxy.toString(), WORKER_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS) });
  pipeline.workers.splice(pipeline.workers.indexOf(worker), 1);
  expect(worker.coordinator.owned().length).toBeGreaterThan(0);

  proxy.setMode('blackhole');
  const started = performance.now();
  await worker.stop();
  const afterDrainMs = performance.now() - started - DRAIN_TIMEOUT_MS;
  // Unbounded: the shards' cancels wait out the drain, then 5 s each for both channels' closes
  // and both connections' closes, 20 s in all.
  expect(afterDrainMs).toBeLessThan(GRACE_AFTER_DRAIN_MS);
}, 60_000);
