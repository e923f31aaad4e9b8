import { randomBytes } from 'node:crypto';
import { createBroker, type Broker } from '../../src/queue/broker';
import { createPublisher, type Publication } from '../../src/queue/publisher';
import { createLogger } from '../../src/telemetry/logger';
import { countSocketFlushes, openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';

const suffix = randomBytes(4).toString('hex');
const exchange = `wagate-test-publisher-${suffix}`;
const queue = `wagate-test-publisher-${suffix}`;
const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';

let broker: Broker;
let probe: QueueProbe;

beforeAll(async () => {
  broker = createBroker({
    url: TEST_AMQP_URL,
    name: `wagate-test publisher ${suffix}`,
    log: createLogger('silent', 'wagate-test'),
    async setup(channel) {
      await channel.assertExchange(exchange, 'direct', { durable: false, autoDelete: false });
      await channel.assertQueue(queue, { durable: false });
      await channel.bindQueue(queue, exchange, 'all');
    },
  });
  await broker.waitUntilConnected(30_000);
  probe = await openQueueProbe();
}, 60_000);

beforeEach(async () => {
  await broker.channel()!.purgeQueue(queue);
});

afterAll(async () => {
  const channel = broker.channel();
  await channel?.deleteQueue(queue).catch(() => undefined);
  await channel?.deleteExchange(exchange).catch(() => undefined);
  await probe.close();
  await broker.close();
});

function publications(count: number, bodyBytes: number, tag: string): Publication[] {
  return Array.from({ length: count }, (_, index) => ({
    messageId: `test:${tag}-${index}`,
    routingKey: 'all',
    body: Buffer.alloc(bodyBytes, 'x'),
    traceparent: TRACEPARENT,
  }));
}

describe('publisher', () => {
  it('sends a burst in a few socket writes rather than one per message, and every message is confirmed', async () => {
    const publisher = createPublisher(broker, 30_000);
    const flushes = countSocketFlushes(broker.channel()!);
    const results = await publisher.publishAll(exchange, publications(50, 600, 'burst'));
    flushes.restore();

    expect(results).toEqual(Array(50).fill(true));
    // One flush for the burst; the confirms' wait may add none. Written one by one it would be 50.
    expect(flushes.count()).toBeLessThanOrEqual(3);
    const delivered = await probe.drain(queue);
    expect(delivered.map((m) => m.properties.messageId)).toEqual(publications(50, 600, 'burst').map((p) => p.messageId));
  }, 60_000);

  it('lets a burst larger than amqplib\'s buffer go out and be confirmed', async () => {
    // amqplib's channel buffer holds 1,024 frames: 3,000 messages fill it, so the publisher
    // waits for it to drain mid-burst, which it would never do with the socket still corked.
    const channel = broker.channel()!;
    const publish = channel.publish;
    let refused = 0;
    channel.publish = function (this: typeof channel, ...args: Parameters<typeof publish>) {
      const accepted = publish.apply(this, args);
      if (!accepted) refused += 1;
      return accepted;
    };
    const publisher = createPublisher(broker, 30_000);
    const results = await publisher.publishAll(exchange, publications(3000, 1024, 'large'));
    channel.publish = publish;

    expect(refused).toBeGreaterThan(0);
    expect(results.filter((ok) => !ok)).toHaveLength(0);
    expect(results).toHaveLength(3000);
    const delivered = await probe.drain(queue);
    expect(delivered).toHaveLength(3000);
  }, 120_000);

  it('writes a batch started while another waits for the socket to drain after all of it, keeping the order of a sender\'s messages', async () => {
    const channel = broker.channel()!;
    const publish = channel.publish;
    const publisher = createPublisher(broker, 30_000);
    let second: Promise<(boolean | null)[]> | undefined;
    let scheduled = false;
    channel.publish = function (this: typeof channel, ...args: Parameters<typeof publish>) {
      const accepted = publish.apply(this, args);
      // The first batch now waits for the drain: the next one starts meanwhile.
      if (!accepted && !scheduled) {
        scheduled = true;
        setImmediate(() => (second = publisher.publishAll(exchange, publications(1, 100, 'later'))));
      }
      return accepted;
    };
    const first = await publisher.publishAll(exchange, publications(3000, 1024, 'large'));
    channel.publish = publish;
    expect(second).toBeDefined();
    expect([first.every(Boolean), await second]).toEqual([true, [true]]);
    const ids = (await probe.drain(queue)).map((message) => message.properties.messageId);
    expect([ids.length, ids.indexOf('test:later-0')]).toEqual([3001, 3000]);
  }, 120_000);

  it('counts a returned message without an id as not routed, and one beside it as routed', async () => {
    const publisher = createPublisher(broker, 30_000);
    const unnamed = (routingKey: string): Publication => ({ messageId: '', routingKey, body: Buffer.from('{}'), traceparent: TRACEPARENT });
    // No queue is bound to this key: the broker returns the message, then confirms it.
    expect(await publisher.publishAll(exchange, [unnamed('nowhere'), unnamed('all')])).toEqual([false, true]);
    expect(await probe.drain(queue)).toHaveLength(1);
  }, 60_000);

  it('publishes again after a burst, so the socket was left uncorked', async () => {
    const publisher = createPublisher(broker, 30_000);
    expect(await publisher.publishAll(exchange, publications(3, 100, 'first'))).toEqual([true, true, true]);
    // A plain publish outside publishAll reaches the broker only if nothing holds the socket.
    const channel = broker.channel()!;
    await new Promise<void>((resolve, reject) =>
      channel.publish(exchange, 'all', Buffer.from('plain'), { messageId: 'test:plain' }, (error) => (error ? reject(error) : resolve())),
    );
    const delivered = await probe.drain(queue);
    expect(delivered.map((m) => m.properties.messageId)).toEqual(['test:first-0', 'test:first-1', 'test:first-2', 'test:plain']);
  }, 60_000);
});
