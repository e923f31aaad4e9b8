import amqp from 'amqplib';
import { loadConfig } from '../../src/config';
import { createOutboxRelay, type OutboxRelay } from '../../src/ledger/outbox-relay';
import type { QueuedEntry } from '../../src/ledger/recorder';
import { createBroker, type Broker } from '../../src/queue/broker';
import { topologyFromConfig } from '../../src/queue/depths';
import type { QueueMessage } from '../../src/queue/message';
import { createPublisher, type Publisher } from '../../src/queue/publisher';
import { assertTopology, shardOf } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, holdInTransaction, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { commitQueuedText } from '../support/relay';
import { waitFor } from '../support/wait';

/**
 * Per-sender order through the outbox: a message that had to wait for a sweep (the broker was
 * away or blocked, or its owner died) reaches its queue before the sender's later messages.
 */
const topology = topologyFromConfig(loadConfig(testEnv('')));
const log = createLogger('silent', 'wagate-test');
let db: TestDatabase;
let probe: QueueProbe;
let broker: Broker;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
  broker = createBroker({ url: TEST_AMQP_URL, name: 'wagate-test outbox order', log, setup: (channel) => assertTopology(channel, topology) });
  await broker.waitUntilConnected(30_000);
});

afterAll(async () => {
  await broker.close();
  await probe.deleteTopology(topology);
  await probe.close();
  await db.drop();
});

function relayOf(publisher: Publisher, canPublish: () => boolean): OutboxRelay {
  return createOutboxRelay({
    sql: db.sql, publisher, topology, canPublish, leaseSeconds: 30, confirmTimeoutMs: 10_000, pollMs: 60_000, publishLingerMs: 0,
    log, metrics: createMetrics('ingest', { processMetrics: false }), sweepBatch: 3,
  });
}

const commit = (sender: string, text: string) => commitQueuedText(db, sender, text);

/** The texts in the work queues, per sender, in queue order. */
async function queuedTexts(): Promise<Map<string, string[]>> {
  const bySender = new Map<string, string[]>();
  for (const message of await probe.drainWork(topology)) {
    const body = JSON.parse(message.content.toString()) as QueueMessage;
    bySender.set(body.senderKey, [...(bySender.get(body.senderKey) ?? []), (body.content as { text: { body: string } }).text.body]);
  }
  return bySender;
}

describe('the outbox relay keeps a sender\'s order', () => {
  it('sends a message committed while the broker was away before the sender\'s next one, which waits for the sweep too', async () => {
    let brokerUp = false;
    const relay = relayOf(createPublisher(broker, 10_000), () => brokerUp);
    try {
      expect(await relay.publishOwned([await commit('15550800001', 'two pizzas')])).toBe(false);
      brokerUp = true;
      // Published at once, "cancel" would reach the queue before the order it cancels.
      expect(await relay.publishOwned([await commit('15550800001', 'cancel')])).toBe(false);
      expect(await relay.sweepOnce()).toBe(2);
      expect((await queuedTexts()).get('15550800001')).toEqual(['two pizzas', 'cancel']);
      // With nothing left waiting, new messages go out at once again.
      expect(await relay.publishOwned([await commit('15550800001', 'status')])).toBe(true);
      expect((await queuedTexts()).get('15550800001')).toEqual(['status']);
    } finally {
      await relay.stop();
    }
  });

  it('leaves the sender\'s next message to the sweep once the broker refused one it published itself, without waiting for a poll', async () => {
    const sender = '15550800021';
    const shard = topology.shards[shardOf(sender, topology.shards.length)]!;
    const connection = await amqp.connect(TEST_AMQP_URL);
    const channel = await connection.createChannel();
    const relay = relayOf(createPublisher(broker, 10_000), () => true);
    try {
      // Its shard queue unbound, the broker returns the message (mandatory): refused.
      await channel.unbindQueue(shard.queue, topology.exchange, shard.routingKey);
      expect(await relay.publishOwned([await commit(sender, 'two pizzas')])).toBe(false);
      await channel.bindQueue(shard.queue, topology.exchange, shard.routingKey);
      // The relay polls once a minute here: published at once, "cancel" would go first.
      expect(await relay.publishOwned([await commit(sender, 'cancel')])).toBe(false);
      expect(await relay.sweepOnce()).toBe(2);
      expect((await queuedTexts()).get(sender)).toEqual(['two pizzas', 'cancel']);
    } finally {
      await relay.stop();
      await connection.close();
    }
  });

  it('keeps new messages behind one whose release a read of the outbox missed, still uncommitted', async () => {
    const sender = '15550800031';
    let brokerUp = false;
    const relay = relayOf(createPublisher(broker, 10_000), () => brokerUp);
    const first = await commit(sender, 'two pizzas');
    // The release of "two pizzas" waits on its row: a poll reading the outbox meanwhile sees it leased, not due.
    const lock = holdInTransaction(db.sql, (tx) => tx`SELECT 1 FROM outbox WHERE webhook_message_id = ${first.rowId} FOR UPDATE`);
    try {
      await lock.held;
      const firstPublish = relay.publishOwned([first]);
      await waitFor('the release to wait on the row', async () =>
        (await db.sql`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox o SET lease_until%'`).length > 0);
      brokerUp = true;
      expect(await relay.sweepOnce()).toBe(0);
      // Published at once, "cancel" would reach the queue before the order it cancels.
      expect(await relay.publishOwned([await commit(sender, 'cancel')])).toBe(false);
      await lock.release();
      expect(await firstPublish).toBe(false);
      expect(await relay.sweepOnce()).toBe(2);
      expect((await queuedTexts()).get(sender)).toEqual(['two pizzas', 'cancel']);
    } finally {
      await lock.release();
      await relay.stop();
    }
  });

  it('sweeps one pod at a time, so two pods never publish neighbouring batches of a backlog at once', async () => {
    const senders = ['15550800011', '15550800012'];
    const backlog: QueuedEntry[] = [];
    for (let i = 1; i <= 8; i += 1) backlog.push(await commit(senders[i % 2]!, `item ${i}`));
    await db.sql`UPDATE outbox SET lease_until = now() - interval '1 minute' WHERE webhook_message_id = ANY(${backlog.map((e) => e.rowId)}::bigint[])`;
    // The first pod's first batch is held until the second pod has tried to sweep.
    const real = createPublisher(broker, 10_000);
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let firstBatch = true;
    const holding: Publisher = {
      async publishAll(exchange, entries, onLateAnswer, order) {
        if (firstBatch) {
          firstBatch = false;
          await held;
        }
        return real.publishAll(exchange, entries, onLateAnswer, order);
      },
    };
    const [first, second] = [relayOf(holding, () => true), relayOf(real, () => true)];
    try {
      const firstSweep = first.sweepOnce();
      // The first pod has claimed its first batch, and waits to publish it.
      await waitFor('the first pod\'s first claim', async () => (await db.sql`SELECT 1 FROM outbox WHERE attempts > 0`).length > 0);
      expect(await second.sweepOnce()).toBe(0);
      release();
      expect(await firstSweep).toBe(8);
      const texts = await queuedTexts();
      expect([texts.get(senders[1]!), texts.get(senders[0]!)]).toEqual([['item 1', 'item 3', 'item 5', 'item 7'], ['item 2', 'item 4', 'item 6', 'item 8']]);
    } finally {
      release();
      await Promise.all([first.stop(), second.stop()]);
    }
  });
});
