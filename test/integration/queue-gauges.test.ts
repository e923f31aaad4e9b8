import { loadConfig } from '../../src/config';
import { createBroker, type Broker } from '../../src/queue/broker';
import { refreshQueueGauges, topologyFromConfig } from '../../src/queue/depths';
import { assertTopology } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { deleteTopology } from '../support/amqp';
import { testEnv } from '../support/ingest';
import { seriesValue } from '../support/metrics';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait';

/**
 * The broker-derived gauges, read by every worker and summed up with max(): a read that failed
 * must leave a gap, not a number. A stale depth would keep a purged dead-letter queue "present",
 * and a zero would say that no worker consumes.
 */
const topology = topologyFromConfig(loadConfig(testEnv('postgres://unused@127.0.0.1/unused')));
let proxy: TcpProxy;
let broker: Broker;

beforeAll(async () => {
  proxy = await startTcpProxy(5672);
  broker = createBroker({
    url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
    name: 'queue-gauges-test',
    log: createLogger('silent', 'test'),
    setup: (channel) => assertTopology(channel, topology),
    reconnectDelayMs: { min: 50, max: 200 },
  });
  await broker.waitUntilConnected(10_000);
});

afterAll(async () => {
  proxy.setMode('forward');
  await broker.close();
  await proxy.close();
  await deleteTopology(topology);
});

test('a failed read leaves the depth and consumer gauges without a value, and a good one brings them back', async () => {
  const metrics = createMetrics('worker', { processMetrics: false });
  const exposition = () => metrics.registry.metrics();
  await refreshQueueGauges(broker, topology, metrics);
  expect(seriesValue(await exposition(), 'wagate_queue_consumers')).toBe(0);
  expect(seriesValue(await exposition(), 'wagate_queue_ready_messages', { queue: 'work' })).toBe(0);

  proxy.setMode('refuse');
  await waitFor('the broker connection to be lost', () => !broker.isConnected());
  await refreshQueueGauges(broker, topology, metrics);
  const failed = await exposition();
  // prom-client writes NaN as "Nan", which Prometheus parses (Go's ParseFloat ignores case).
  expect(failed).toMatch(/^wagate_queue_consumers(\{[^}]*\})? nan$/im);
  expect(failed).not.toMatch(/^wagate_queue_ready_messages\{[^}]*queue="work"/m);
  expect(failed).not.toMatch(/^wagate_queue_shard_ready_messages\{/m);

  proxy.setMode('forward');
  await broker.waitUntilConnected(10_000);
  await refreshQueueGauges(broker, topology, metrics);
  expect(seriesValue(await exposition(), 'wagate_queue_consumers')).toBe(0);
});
