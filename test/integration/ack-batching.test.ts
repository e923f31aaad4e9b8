import { randomBytes } from 'node:crypto';
import amqp, { type ChannelModel, type ConsumeMessage } from 'amqplib';
import { countSocketFlushes, TEST_AMQP_URL } from '../support/amqp';
import { waitFor } from '../support/wait';

/**
 * A worker acks the messages of a micro-batch in one turn. amqplib writes each frame as a
 * socket write of its own unless its writer is corked for the turn
 * (patches/amqplib+2.3.1.patch), and on loopback each write wakes the broker: the acks of one
 * turn must leave together, and every one of them must still reach the broker.
 */
const suffix = randomBytes(4).toString('hex');
const queue = `wagate-test-acks-${suffix}`;
const MESSAGES = 50;

let connection: ChannelModel;

beforeAll(async () => {
  connection = await amqp.connect(TEST_AMQP_URL);
  const setup = await connection.createConfirmChannel();
  await setup.assertQueue(queue, { durable: false });
  for (let index = 0; index < MESSAGES; index += 1) setup.sendToQueue(queue, Buffer.from(`m${index}`));
  await setup.waitForConfirms();
  await setup.close();
}, 60_000);

afterAll(async () => {
  const cleanup = await connection.createChannel();
  await cleanup.deleteQueue(queue).catch(() => undefined);
  await connection.close();
});

describe('acks', () => {
  it('leave in a few socket writes rather than one per message, and the broker takes every one', async () => {
    const channel = await connection.createChannel();
    await channel.prefetch(MESSAGES);
    const deliveries: ConsumeMessage[] = [];
    await channel.consume(queue, (message) => {
      if (message) deliveries.push(message);
    });
    await waitFor(`${MESSAGES} deliveries`, () => deliveries.length === MESSAGES, 30_000);

    const flushes = countSocketFlushes(channel);
    for (const delivery of deliveries) channel.ack(delivery);
    // Closing is a round trip after the acks: once it is answered, the broker has read them.
    // An unacked delivery would go back to the queue with the close.
    await channel.close();
    flushes.restore();

    // The acks in one flush, the close in one more. Written one by one it would be 51.
    expect(flushes.count()).toBeLessThanOrEqual(3);
    const check = await connection.createChannel();
    expect((await check.checkQueue(queue)).messageCount).toBe(0);
    await check.close();
  }, 60_000);
});
