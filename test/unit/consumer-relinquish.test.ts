import { EventEmitter } from 'node:events';
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Sql } from '../../src/db/client';
import type { Publisher } from '../../src/queue/publisher';
import { settleWithin } from '../../src/settle-within';
import type { QueueMessage } from '../../src/queue/message';
import { shardOf, topologyNames } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { createWorkerConsumer } from '../../src/worker/consumer';
import type { ProcessOutcome } from '../../src/worker/process-message';
import { waitFor } from '../support/wait';

/**
 * What a taken-over shard's release does when the broker connection goes while it waits: the
 * channel's close event comes, but close() is never answered, and the work under way may
 * still be running. The broker has then given every message back already; the release must
 * end, or the shard stays busy in its worker for good. A connection stand-in plays the lost
 * connection, which a real broker cannot be made to do at that exact moment.
 */
function connectionWhoseClosesAreNeverAnswered() {
  const events = new EventEmitter();
  const consumers: ((delivery: ConsumeMessage) => void)[] = [];
  const channels: EventEmitter[] = [];
  const connection = {
    once: events.once.bind(events),
    async createConfirmChannel() {
      const channelEvents = new EventEmitter();
      channels.push(channelEvents);
      return {
        once: channelEvents.once.bind(channelEvents),
        on: channelEvents.on.bind(channelEvents),
        assertQueue: async () => undefined,
        bindQueue: async () => undefined,
        prefetch: async () => undefined,
        consume: async (_queue: string, callback: (delivery: ConsumeMessage) => void) => {
          consumers.push(callback);
          return { consumerTag: `ctag${consumers.length}` };
        },
        cancel: async () => undefined,
        ack: () => undefined,
        nack: () => undefined,
        close: () => new Promise<void>(() => undefined),
      } as unknown as ConfirmChannel;
    },
  };
  return {
    connection,
    /** Delivers to the consumer started last. */
    deliver(senderKey: string, id: string) {
      const body = { v: 1, source: 'whatsapp', messageId: id, from: senderKey, senderKey, business: '1', contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: {} };
      consumers.at(-1)!({ content: Buffer.from(JSON.stringify(body)), fields: { deliveryTag: 1 }, properties: { headers: {} } } as unknown as ConsumeMessage);
    },
    loseConnection() {
      for (const channel of channels) channel.emit('close');
      events.emit('close');
    },
  };
}

function consumerWithHandle(handle: (message: QueueMessage) => Promise<ProcessOutcome>, shards = 1) {
  return createWorkerConsumer({
    topology: topologyNames({ prefix: 'unit', deliveryLimit: 5, retryDelaysMs: [1000], shards }),
    publisher: {} as Publisher,
    sql: {} as Sql,
    log: createLogger('silent', 'unit'),
    metrics: createMetrics('worker', { processMetrics: false }),
    handle,
  });
}

const settledWithin = (work: Promise<void>, ms: number) => settleWithin(work.then(() => true), ms, false);

it('waits only for the lost channel\'s work, not for what the next channel runs meanwhile', async () => {
  const finishers = new Map<string, (outcome: ProcessOutcome) => void>();
  const consumer = consumerWithHandle((message) => new Promise<ProcessOutcome>((resolve) => finishers.set(message.messageId, resolve)), 2);
  const [onShard0, onShard1] = [0, 1].map((shard) => Array.from({ length: 50 }, (_, n) => `1555000${n}`).find((key) => shardOf(key, 2) === shard)!);
  const first = connectionWhoseClosesAreNeverAnswered();
  await consumer.attach(first.connection);
  expect(await consumer.subscribe(0, 10)).toBe(true);
  first.deliver(onShard0!, 'taken-shard-message');
  await waitFor('its processing to start', () => finishers.has('taken-shard-message'));

  const relinquished = consumer.relinquish(0);
  first.loseConnection();
  // The worker reconnects and goes on with another shard, whose message takes its time.
  const next = connectionWhoseClosesAreNeverAnswered();
  await consumer.attach(next.connection);
  expect(await consumer.subscribe(1, 10)).toBe(true);
  next.deliver(onShard1!, 'other-shard-message');
  await waitFor('the other shard\'s processing to start', () => finishers.has('other-shard-message'));
  finishers.get('taken-shard-message')!('processed');
  expect(await settledWithin(relinquished, 2_000)).toBe(true);
  finishers.get('other-shard-message')!('processed');
});

it('ends when the broker never answers the close, once the channel is gone', async () => {
  let finish!: (outcome: ProcessOutcome) => void;
  const consumer = consumerWithHandle(() => new Promise<ProcessOutcome>((resolve) => (finish = resolve)));
  const broker = connectionWhoseClosesAreNeverAnswered();
  await consumer.attach(broker.connection);
  expect(await consumer.subscribe(0, 10)).toBe(true);
  broker.deliver('15550001', 'm1');
  await new Promise((resolve) => setImmediate(resolve));

  const relinquished = consumer.relinquish(0);
  // Fenced: the channel is about to close, so its consumer no longer counts.
  expect(await consumer.subscribe(0, 10)).toBe(false);
  finish('processed');
  expect(await settledWithin(relinquished, 300)).toBe(false);
  broker.loseConnection();
  expect(await settledWithin(relinquished, 2_000)).toBe(true);
});
