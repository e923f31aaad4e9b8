import { EventEmitter } from 'node:events';
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Sql } from '../../src/db/client';
import { RetryableError } from '../../src/errors';
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
 * Moments a real broker cannot be made to produce on cue: a connection lost while a release
 * waits, a close the broker never answers, a delivery that arrives before the consume is
 * answered. A connection stand-in plays them; each shard's consumer gets a channel of its own.
 */
function fakeConnection(options: { closesAnswered: boolean; consumeAnswered?: Promise<void> }) {
  const events = new EventEmitter();
  const consumers = new Map<string, (delivery: ConsumeMessage | null) => void>();
  const channels: EventEmitter[] = [];
  /** What the consumer asked of its channels, in order. */
  const calls: string[] = [];
  const message = (senderKey: string, id: string) => {
    const body = { v: 1, source: 'whatsapp', messageId: id, from: senderKey, senderKey, business: '1', contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: {} };
    return { content: Buffer.from(JSON.stringify(body)), fields: { deliveryTag: 1 }, properties: { headers: {} } } as unknown as ConsumeMessage;
  };
  const connection = {
    once: events.once.bind(events),
    async createConfirmChannel() {
      const channelEvents = new EventEmitter();
      channels.push(channelEvents);
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        channelEvents.emit('close');
      };
      return {
        once: channelEvents.once.bind(channelEvents),
        on: channelEvents.on.bind(channelEvents),
        assertQueue: async () => undefined,
        bindQueue: async () => undefined,
        prefetch: async () => undefined,
        consume: async (queue: string, callback: (delivery: ConsumeMessage | null) => void) => {
          consumers.set(queue, callback);
          // The broker may deliver before the consume's answer has been read.
          await options.consumeAnswered;
          return { consumerTag: `ctag-${queue}` };
        },
        cancel: async () => void calls.push('cancel'),
        ack: () => undefined,
        nack: () => undefined,
        close: () => (calls.push('close'), options.closesAnswered ? Promise.resolve(close()) : new Promise<void>(() => undefined)),
        isClosed: () => closed,
      } as unknown as ConfirmChannel;
    },
  };
  return {
    connection,
    deliver(queue: string, senderKey: string, id: string) {
      consumers.get(queue)!(message(senderKey, id));
    },
    hasConsumer: (queue: string) => consumers.has(queue),
    calls,
    loseConnection() {
      for (const channel of channels) channel.emit('close');
      events.emit('close');
    },
  };
}

const topology = (shards: number) => topologyNames({ prefix: 'unit', deliveryLimit: 5, retryDelaysMs: [1000], shards });

function consumerWithHandle(handle: (message: QueueMessage) => Promise<ProcessOutcome>, shards = 1) {
  return createWorkerConsumer({
    topology: topology(shards),
    publisher: {} as Publisher,
    sql: {} as Sql,
    log: createLogger('silent', 'unit'),
    metrics: createMetrics('worker', { processMetrics: false }),
    handle,
  });
}

const settledWithin = (work: Promise<void>, ms: number) => settleWithin(work.then(() => true), ms, false);
const senderOn = (shard: number, shards: number) => Array.from({ length: 50 }, (_, n) => `1555000${n}`).find((key) => shardOf(key, shards) === shard)!;

it('waits only for the taken shard\'s work, and leaves the other shards\' consumers running', async () => {
  const finishers = new Map<string, (outcome: ProcessOutcome) => void>();
  const consumer = consumerWithHandle((message) => new Promise<ProcessOutcome>((resolve) => finishers.set(message.messageId, resolve)), 2);
  const broker = fakeConnection({ closesAnswered: true });
  await consumer.attach(broker.connection);
  expect(await consumer.subscribe(0, 10)).toBe(true);
  expect(await consumer.subscribe(1, 10)).toBe(true);
  const [queue0, queue1] = topology(2).shards.map((shard) => shard.queue);
  broker.deliver(queue0!, senderOn(0, 2), 'taken-shard-message');
  broker.deliver(queue1!, senderOn(1, 2), 'other-shard-message');
  await waitFor('both to start', () => finishers.has('taken-shard-message') && finishers.has('other-shard-message'));

  const relinquished = consumer.relinquish(0);
  finishers.get('taken-shard-message')!('processed');
  expect(await settledWithin(relinquished, 2_000)).toBe(true);
  expect(consumer.isSubscribed(0)).toBe(false);
  expect(consumer.isSubscribed(1)).toBe(true);
  finishers.get('other-shard-message')!('processed');
});

it('ends when the broker never answers the close, once the channel is gone', async () => {
  let finish!: (outcome: ProcessOutcome) => void;
  const consumer = consumerWithHandle(() => new Promise<ProcessOutcome>((resolve) => (finish = resolve)));
  const broker = fakeConnection({ closesAnswered: false });
  await consumer.attach(broker.connection);
  expect(await consumer.subscribe(0, 10)).toBe(true);
  broker.deliver(topology(1).shards[0]!.queue, '15550001', 'm1');
  await new Promise((resolve) => setImmediate(resolve));

  const relinquished = consumer.relinquish(0);
  // Fenced: the channel is about to close, so its consumer no longer counts.
  expect(await consumer.subscribe(0, 10)).toBe(false);
  finish('processed');
  expect(await settledWithin(relinquished, 300)).toBe(false);
  broker.loseConnection();
  expect(await settledWithin(relinquished, 2_000)).toBe(true);
});

it('closes, never cancels, a channel being let go when the worker stops: the new owner waits behind its consumer, and a sender\'s earlier messages are still in hand', async () => {
  const started: string[] = [];
  // Hung (a Postgres link gone dead), so that the release's drain cannot finish.
  const consumer = consumerWithHandle((message) => (started.push(message.messageId), new Promise<ProcessOutcome>(() => undefined)));
  const broker = fakeConnection({ closesAnswered: true });
  await consumer.attach(broker.connection);
  expect(await consumer.subscribe(0, 10)).toBe(true);
  const queue = topology(1).shards[0]!.queue;
  broker.deliver(queue, '15550001', 'x1');
  broker.deliver(queue, '15550001', 'x2');
  await waitFor('x1 to start', () => started.includes('x1'));

  void consumer.relinquish(0);
  void consumer.stop();
  await waitFor('the channel to be closed', () => broker.calls.includes('close'));
  expect(broker.calls).not.toContain('cancel');
  expect(started).toEqual(['x1']);
});

it('cancels the consumers of the shards it still holds when it stops, and finishes what they were given', async () => {
  const finishers = new Map<string, (outcome: ProcessOutcome) => void>();
  const consumer = consumerWithHandle((message) => new Promise<ProcessOutcome>((resolve) => finishers.set(message.messageId, resolve)));
  const broker = fakeConnection({ closesAnswered: true });
  await consumer.attach(broker.connection);
  expect(await consumer.subscribe(0, 10)).toBe(true);
  broker.deliver(topology(1).shards[0]!.queue, '15550001', 'm1');
  await waitFor('m1 to start', () => finishers.has('m1'));

  const stopped = consumer.stop();
  await waitFor('the consumer to be cancelled', () => broker.calls.includes('cancel'));
  expect(broker.calls).toEqual(['cancel']);
  finishers.get('m1')!('processed');
  expect(await settledWithin(stopped, 2_000)).toBe(true);
  expect(broker.calls).toEqual(['cancel', 'close']);
});

/** A consumer whose consume is sent but not yet answered, and a way to answer it. */
async function consumerBeingStarted(handle: (message: QueueMessage) => Promise<ProcessOutcome>) {
  const consumer = consumerWithHandle(handle);
  let answerConsume!: () => void;
  const consumeAnswered = new Promise<void>((resolve) => (answerConsume = resolve));
  const broker = fakeConnection({ closesAnswered: true, consumeAnswered });
  await consumer.attach(broker.connection);
  const subscribing = consumer.subscribe(0, 10);
  const queue = topology(1).shards[0]!.queue;
  await waitFor('the consume to be sent', () => broker.hasConsumer(queue));
  return { consumer, subscribing, answerConsume, deliver: (id: string) => broker.deliver(queue, '15550001', id) };
}

it('finishes what a consumer let go while it started was given, before the release ends', async () => {
  let started = 0;
  let finish!: (outcome: ProcessOutcome) => void;
  const { consumer, subscribing, answerConsume, deliver } = await consumerBeingStarted(() => {
    started += 1;
    return new Promise<ProcessOutcome>((resolve) => (finish = resolve));
  });
  deliver('early');
  await waitFor('the early delivery to start', () => started === 1);
  const released = consumer.release(0);
  answerConsume();
  expect(await subscribing).toBe(false);
  expect(await settledWithin(released, 300)).toBe(false);
  finish('processed');
  expect(await settledWithin(released, 2_000)).toBe(true);
  expect(consumer.isSubscribed(0)).toBe(false);
});

it('starts nothing that a consumer let go while it started is given after the release', async () => {
  let started = 0;
  const { consumer, subscribing, answerConsume, deliver } = await consumerBeingStarted(async () => {
    started += 1;
    return 'processed';
  });
  expect(await settledWithin(consumer.release(0), 2_000)).toBe(true);
  // The release is over (and would be recorded): this one goes back with the channel.
  deliver('late');
  answerConsume();
  expect(await subscribing).toBe(false);
  await new Promise((resolve) => setImmediate(resolve));
  expect(started).toBe(0);
});

it('starts none of a sender\'s later messages once a hand-over, given up on a shard being let go, gave its message back', async () => {
  const started: string[] = [];
  const consumer = createWorkerConsumer({
    topology: topology(1),
    // A broker that never confirms: the hand-over holds its delivery until the hold limit.
    publisher: { publishAll: async () => [null] } as unknown as Publisher,
    sql: {} as Sql,
    log: createLogger('silent', 'unit'),
    metrics: createMetrics('worker', { processMetrics: false }),
    holdLimitMs: 100,
    handle: async (message) => {
      started.push(message.messageId);
      throw new RetryableError('the provider answered 503');
    },
  });
  const broker = fakeConnection({ closesAnswered: true });
  await consumer.attach(broker.connection);
  expect(await consumer.subscribe(0, 10)).toBe(true);
  const queue = topology(1).shards[0]!.queue;
  broker.deliver(queue, '15550001', 'first');
  broker.deliver(queue, '15550001', 'second');
  await waitFor('the first to start', () => started.includes('first'));
  // The first goes back to its queue; the second, in hand behind it, goes back with the
  // channel, behind it, rather than start here and reach the provider first.
  expect(await settledWithin(consumer.release(0), 5_000)).toBe(true);
  expect(started).toEqual(['first']);
});

it('does not take a connection that closed while the topology was declared, and takes the next', async () => {
  const consumer = consumerWithHandle(async () => 'processed');
  const dead = fakeConnection({ closesAnswered: true });
  // The close came before attach could listen for it: only the broker's setup signal knows.
  dead.loseConnection();
  const lost = new AbortController();
  lost.abort();
  await consumer.attach(dead.connection, lost.signal);
  expect(consumer.hasChannel()).toBe(false);
  expect(await consumer.subscribe(0, 10)).toBe(false);
  const live = fakeConnection({ closesAnswered: true });
  await consumer.attach(live.connection, new AbortController().signal);
  expect(consumer.hasChannel()).toBe(true);
  expect(await consumer.subscribe(0, 10)).toBe(true);
});
