import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { createQueueInspector } from '../../src/queue/queue-inspector';
import { TEST_AMQP_URL } from '../support/amqp';
import { randomQueuePrefix } from '../support/ingest';
import { waitFor } from '../support/wait';

let connection: ChannelModel;
const prefix = randomQueuePrefix();
const present = [`${prefix}.a`, `${prefix}.b`];
const missing = `${prefix}.missing`;

beforeAll(async () => {
  connection = await amqp.connect(TEST_AMQP_URL);
  const channel = await connection.createChannel();
  await channel.assertQueue(present[0]!, { autoDelete: false });
  await channel.assertQueue(present[1]!, { autoDelete: false });
  channel.sendToQueue(present[1]!, Buffer.from('one'));
  channel.sendToQueue(present[1]!, Buffer.from('two'));
  await channel.close();
});

afterAll(async () => {
  const channel = await connection.createChannel();
  for (const queue of present) await channel.deleteQueue(queue);
  await connection.close();
});

/** The connection, counting the channels opened on it. */
function countingChannels(model: ChannelModel) {
  const counter = { opened: 0 };
  const counted = new Proxy(model, {
    get(target, property, receiver) {
      if (property === 'createChannel') return () => ((counter.opened += 1), target.createChannel());
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { counted, counter };
}

describe('the queue inspector behind the broker gauges', () => {
  it('asks every queue on one kept channel, opening another only after a missing queue closed it', async () => {
    const { counted, counter } = countingChannels(connection);
    const inspector = createQueueInspector();
    for (let round = 0; round < 5; round += 1) {
      const answers = await Promise.all(present.map((queue) => inspector.inspect(counted, queue)));
      expect(answers).toEqual([{ messageCount: 0, consumerCount: 0 }, { messageCount: 2, consumerCount: 0 }]);
    }
    // Ten questions, one channel: a channel per question was the churn.
    expect(counter.opened).toBe(1);
    // The broker closes the channel a missing queue is asked on; the next question opens one.
    const [gone, after] = await Promise.all([inspector.inspect(counted, missing), inspector.inspect(counted, present[1]!)]);
    expect(gone).toBeNull();
    expect(after).toEqual({ messageCount: 2, consumerCount: 0 });
    expect(counter.opened).toBe(2);
  });

  it('closes a channel that the broker opened after the question had given up on it', async () => {
    let late: Channel | undefined;
    let closed = false;
    // The broker answers the open after the inspector's timeout, as a busy one does.
    const slow = new Proxy(connection, {
      get(target, property, receiver) {
        if (property === 'createChannel') {
          return async () => {
            const channel = await target.createChannel();
            channel.once('close', () => (closed = true));
            await new Promise((resolve) => setTimeout(resolve, 300));
            late = channel;
            return channel;
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const inspector = createQueueInspector(50);
    await expect(inspector.inspect(slow, present[0]!)).rejects.toThrow(/did not open a channel within 50 ms/);
    await waitFor('the late channel to arrive', () => late !== undefined);
    await waitFor('the late channel to be closed', () => closed);
  });
});
