import { loadConfig } from '../../src/config';
import { createOutboxRelay, toPublication, type OutboxRelay } from '../../src/ledger/outbox-relay';
import { createBroker, type Broker } from '../../src/queue/broker';
import { topologyFromConfig } from '../../src/queue/depths';
import type { QueueMessage } from '../../src/queue/message';
import { createPublisher, type Publisher } from '../../src/queue/publisher';
import { assertTopology } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { deleteTopology, TEST_AMQP_URL } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';

/**
 * A refusal that comes after the publish deadline hands the row back to the sweeps, but only
 * if no other process has claimed it since: cutting the new claim's lease short would let a
 * third process publish the same row while the second one still is.
 */
const CONFIRM_TIMEOUT_MS = 300;
const LEASE_SECONDS = 30;

const topology = topologyFromConfig(loadConfig(testEnv('postgres://unused@127.0.0.1/unused')));
let db: TestDatabase;
let proxy: TcpProxy;
let broker: Broker;
let publisher: Publisher;
let relay: OutboxRelay;

beforeAll(async () => {
  db = await createTestDatabase();
  const proxied = await startProxyFor(TEST_AMQP_URL, 5672);
  proxy = proxied.proxy;
  broker = createBroker({
    url: proxied.url,
    name: 'late-refusal-test',
    log: createLogger('silent', 'test'),
    // The exchange without its shard queues: every publish comes back unroutable, so the
    // broker's (late) answer is a refusal.
    setup: async (channel) => {
      await assertTopology(channel, topology);
      for (const shard of topology.shards) await channel.deleteQueue(shard.queue);
    },
  });
  await broker.waitUntilConnected(10_000);
  publisher = createPublisher(broker, CONFIRM_TIMEOUT_MS);
  relay = createOutboxRelay({
    sql: db.sql,
    publisher,
    topology,
    canPublish: () => broker.isConnected(),
    leaseSeconds: LEASE_SECONDS,
    confirmTimeoutMs: CONFIRM_TIMEOUT_MS,
    pollMs: 60_000,
    publishLingerMs: 0,
    log: createLogger('silent', 'test'),
    metrics: createMetrics('ingest', { processMetrics: false }),
  });
}, 30_000);

afterAll(async () => {
  proxy.setMode('forward');
  await broker.close();
  await proxy.close();
  await deleteTopology(topology);
  await db.drop();
});

function queueMessage(messageId: string): QueueMessage {
  return {
    v: 1, source: 'whatsapp', messageId, from: '15550500001', senderKey: '15550500001', business: '100',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { body: 'menu' },
  };
}

test('a late refusal leaves alone the lease of a claim made since, and releases a row nobody claimed again', async () => {
  const messages = ['wamid.late.claimed', 'wamid.late.unclaimed'].map(queueMessage);
  for (const message of messages) {
    await db.sql`
      WITH m AS (
        INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
        VALUES ('whatsapp', ${message.messageId}, ${message.from}, ${message.senderKey}, '100', 'queued', ${db.sql.json(message as never)})
        RETURNING id)
      INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() - interval '1 second' FROM m`;
  }
  const leaseOf = async (messageId: string) =>
    (await db.sql<{ attempts: number; seconds_left: number }[]>`
      SELECT o.attempts, extract(epoch FROM o.lease_until - now())::float8 AS seconds_left
      FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id WHERE m.message_id = ${messageId}`)[0]!;

  // The broker stalls: the sweep claims both rows (attempts 1) and gets no answer by the
  // deadline, so each keeps its lease, waiting for a late answer.
  proxy.setMode('blackhole');
  expect(await relay.sweepOnce()).toBe(0);
  expect(await leaseOf('wamid.late.claimed')).toMatchObject({ attempts: 1 });
  // Meanwhile another process's sweep claims the first row, as claimExpired does.
  await db.sql`UPDATE outbox o SET attempts = o.attempts + 1, lease_until = now() + make_interval(secs => ${LEASE_SECONDS})
               FROM webhook_messages m WHERE m.id = o.webhook_message_id AND m.message_id = 'wamid.late.claimed'`;

  // The broker answers at last: both publishes came back unroutable. A publish after them on
  // the same channel is confirmed after them, so once it is, their late answers are in.
  proxy.setMode('forward');
  expect(await publisher.publishAll(topology.exchange, [toPublication(topology, queueMessage('wamid.late.sentinel'), '')])).toEqual([false]);
  await relay.stop();

  const claimed = await leaseOf('wamid.late.claimed');
  expect(claimed.attempts).toBe(2);
  expect(claimed.seconds_left).toBeGreaterThan(LEASE_SECONDS - 10);
  // The row nobody claimed again goes back to the sweeps, a second later per claim.
  const unclaimed = await leaseOf('wamid.late.unclaimed');
  expect(unclaimed.attempts).toBe(1);
  expect(unclaimed.seconds_left).toBeLessThan(2);
});
