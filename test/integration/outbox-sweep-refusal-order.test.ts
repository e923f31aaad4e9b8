import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config';
import { createOutboxRelay, type OutboxRelay } from '../../src/ledger/outbox-relay';
import { createBroker, type Broker } from '../../src/queue/broker';
import { topologyFromConfig } from '../../src/queue/depths';
import type { QueueMessage } from '../../src/queue/message';
import { createPublisher, type Publisher } from '../../src/queue/publisher';
import { assertTopology, routingKeyFor } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { waitFor } from '../support/wait';

/**
 * A sweep after a broker outage publishes the outbox in commit order, batch after batch. When
 * the broker refuses one row of a batch (returned unroutable here; a nack, or a deadline that
 * left the row unwritten, go the same way), that row waits for a later sweep, and so do the
 * rows of its sender after it: the next batch of the same sweep used to publish them, so a
 * sender's "cancel" reached its queue before the "2 pizzas" refused a moment earlier.
 */
const topology = topologyFromConfig(loadConfig(testEnv('postgres://unused@127.0.0.1/unused')));
const SENDER = '15550700001';
const senderShard = topology.shards.find((shard) => shard.routingKey === routingKeyFor(topology, SENDER))!;
/** Another sender, on another shard, whose rows go out meanwhile. */
const OTHER = ['15550700002', '15550700003', '15550700004', '15550700005'].find((key) => routingKeyFor(topology, key) !== senderShard.routingKey)!;

let db: TestDatabase;
let broker: Broker;
let probe: QueueProbe;
let relay: OutboxRelay;
let publishes = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
  broker = createBroker({
    url: TEST_AMQP_URL,
    name: 'outbox-sweep-refusal-order-test',
    log: createLogger('silent', 'test'),
    setup: (channel) => assertTopology(channel, topology),
  });
  await broker.waitUntilConnected(10_000);
  const publisher = createPublisher(broker, 10_000);
  // The real publisher on the real broker; during the sweep's first batch the sender's queue is
  // unbound, so the broker returns that batch's row of the sender as unroutable.
  const refusingFirstBatch: Publisher = {
    async publishAll(exchange, entries, onLateAnswer) {
      publishes += 1;
      if (publishes > 1) return publisher.publishAll(exchange, entries, onLateAnswer);
      const channel = broker.channel()!;
      await channel.unbindQueue(senderShard.queue, topology.exchange, senderShard.routingKey);
      try {
        return await publisher.publishAll(exchange, entries, onLateAnswer);
      } finally {
        await channel.bindQueue(senderShard.queue, topology.exchange, senderShard.routingKey);
      }
    },
  };
  relay = createOutboxRelay({
    sql: db.sql,
    publisher: refusingFirstBatch,
    topology,
    canPublish: () => broker.isConnected(),
    leaseSeconds: 12,
    confirmTimeoutMs: 10_000,
    pollMs: 60_000,
    publishLingerMs: 0,
    sweepBatch: 2,
    log: createLogger('silent', 'test'),
    metrics: createMetrics('ingest', { processMetrics: false }),
  });
}, 30_000);

afterAll(async () => {
  await relay.stop();
  await broker.close();
  await probe.deleteTopology(topology);
  await probe.close();
  await db.drop();
});

/** A queued message with its outbox row, its lease run out: waiting for a sweep, as after an outage. */
async function waiting(senderKey: string, text: string): Promise<string> {
  const messageId = `wamid.sweep.${randomBytes(6).toString('hex')}`;
  const payload: QueueMessage = {
    v: 1, source: 'whatsapp', messageId, from: senderKey, senderKey, business: '100',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { body: text },
  };
  await db.sql`
    WITH m AS (
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
      VALUES ('whatsapp', ${messageId}, ${senderKey}, ${senderKey}, '100', 'queued', ${db.sql.json(payload as never)})
      RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() - interval '1 second' FROM m`;
  return `whatsapp:${messageId}`;
}

it('holds a sender\'s later rows behind its row the broker refused, while other senders\' rows go out', async () => {
  // Two batches of two, in commit order: [order, other], [cancel, other].
  const order = await waiting(SENDER, '2 pizzas');
  const first = await waiting(OTHER, 'menu');
  const cancel = await waiting(SENDER, 'cancel');
  const second = await waiting(OTHER, 'status');

  // The order is refused; the cancel behind it waits, the other sender's rows go out.
  expect(await relay.sweepOnce()).toBe(2);
  const drained = await probe.drainWork(topology);
  expect(drained.map((message) => message.properties.messageId)).toEqual([first, second]);

  // Once its backoff has passed, a later sweep publishes the order, then the cancel.
  await waitFor('the refused order and the cancel behind it to be published', async () => {
    await relay.sweepOnce();
    return (await db.sql`SELECT 1 FROM outbox`).length === 0;
  });
  expect((await probe.drainWork(topology)).map((message) => message.properties.messageId)).toEqual([order, cancel]);
});
