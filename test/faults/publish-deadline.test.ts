import { createBroker, type Broker } from '../../src/queue/broker';
import { createPublisher, type Publication } from '../../src/queue/publisher';
import { createLogger } from '../../src/telemetry/logger';
import { TEST_AMQP_URL } from '../support/amqp';
import { randomQueuePrefix } from '../support/ingest';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';

/**
 * A broker that stops reading (a connection blocked by a memory alarm, a stalled link) fills
 * the socket, and every further publish reports a full buffer. A batch must still end within
 * its one deadline, not wait for a drain once per message: a sweep batch of 500 would
 * otherwise hold the relay for 500 timeouts, past the leases of the rows it holds.
 */
const CONFIRM_TIMEOUT_MS = 400;
/**
 * amqplib's channel buffer reports full past 1,024 queued frames (two per entry here), which it
 * holds once the socket buffers on both sides of the proxy (some megabytes) are full.
 */
const ENTRIES = 1500;
const BODY = Buffer.alloc(32 * 1024, 'x');
/** Far below what one drain wait per full-buffer entry would take (hundreds of them). */
const BOUND_MS = 15 * CONFIRM_TIMEOUT_MS;

let proxy: TcpProxy;
let broker: Broker;
const queue = `${randomQueuePrefix()}.deadline`;

beforeAll(async () => {
  const proxied = await startProxyFor(TEST_AMQP_URL, 5672);
  proxy = proxied.proxy;
  broker = createBroker({
    url: proxied.url,
    name: 'publish-deadline-test',
    log: createLogger('silent', 'test'),
    setup: async (channel) => void (await channel.assertQueue(queue, { durable: false, autoDelete: false })),
  });
  await broker.waitUntilConnected(10_000);
}, 30_000);

afterAll(async () => {
  proxy.setMode('forward');
  await broker.channel()?.deleteQueue(queue).catch(() => undefined);
  await broker.close();
  await proxy.close();
}, 30_000);

it('ends a batch within its one deadline when the broker stops reading, and counts none as confirmed', async () => {
  const publisher = createPublisher(broker, CONFIRM_TIMEOUT_MS);
  // A first batch gets through: the path works before the stall.
  const [healthy] = await publisher.publishAll('', [entry(0, Buffer.from('{}'))]);
  expect(healthy).toBe(true);

  // The proxy stops reading: the kernel's buffers fill, and nothing comes back either.
  proxy.setMode('blackhole');
  const entries = Array.from({ length: ENTRIES }, (_, index) => entry(index + 1, BODY));
  const started = performance.now();
  const results = await publisher.publishAll('', entries);
  const tookMs = performance.now() - started;

  // None confirmed: those written are unanswered (null), those past the deadline were not written (false).
  expect(results.filter((ok) => ok === true)).toEqual([]);
  expect(results.at(-1)).toBe(false);
  expect(tookMs).toBeLessThan(BOUND_MS);
  // No drain listener is left behind by the waits that timed out.
  expect(broker.channel()!.listenerCount('drain')).toBe(0);
}, 60_000);

function entry(index: number, body: Buffer): Publication {
  return { messageId: `whatsapp:wamid.deadline.${index}`, routingKey: queue, body, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' };
}
