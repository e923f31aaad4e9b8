import amqp from 'amqplib';
import postgres from 'postgres';
import type { Sql } from '../../src/db/client';
import { reopenForReplay } from '../../src/commands/operations';
import type { ConfirmChannel } from 'amqplib';
import { dropDeadLetters, listDeadLetters, replayDeadLetters } from '../../src/queue/dead-letters';
import type { QueueMessage } from '../../src/queue/message';
import { withOperatorChannel } from '../../src/queue/operator-channel';
import { topologyNames } from '../../src/queue/topology';
import { deleteTopology, TEST_AMQP_URL } from '../support/amqp';
import { operator } from '../support/dead-letters';
import { randomQueuePrefix } from '../support/ingest';
import { waitFor } from '../support/wait';

const topology = topologyNames({ prefix: randomQueuePrefix(), deliveryLimit: 5, retryDelaysMs: [1000], shards: 2 });

function letter(messageId: string, from: string): QueueMessage {
  return {
    v: 1, source: 'whatsapp', messageId, from, senderKey: from, business: '106540352242922', contactName: null,
    type: 'text', timestampSeconds: 1767225600, receivedAt: new Date().toISOString(), content: { text: { body: '1 coke' } },
  };
}

/**
 * Runs a command's work, then waits, on its own channel before that closes, until the
 * dead-letter queue holds `ready` letters again (a quorum queue applies a return shortly after
 * the nack). Letters still in the channel's hands never come back while it is open.
 */
async function givesBack<T>(ready: number, work: (channel: ConfirmChannel) => Promise<T>): Promise<T> {
  return withOperatorChannel(operator(topology), async (channel) => {
    const result = await work(channel);
    await waitFor(`${ready} letters ready in the dead-letter queue`, async () => (await channel.checkQueue(topology.deadQueue)).messageCount === ready);
    return result;
  });
}

beforeAll(async () => {
  await withOperatorChannel(operator(topology), async () => undefined);
  const connection = await amqp.connect(TEST_AMQP_URL);
  try {
    const channel = await connection.createConfirmChannel();
    for (const [id, from] of [['wamid.A', '15550900001'], ['wamid.B', '15550900002'], ['wamid.C', '15550900002']] as const) {
      channel.publish(topology.deadExchange, topology.deadRoutingKey, Buffer.from(JSON.stringify(letter(id, from))), { persistent: true, messageId: `whatsapp:${id}` });
    }
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
});

afterAll(async () => {
  await deleteTopology(topology);
});

// Left to the channel's close, every return counts as a failed delivery on RabbitMQ 4.3 and
// later, and a quorum queue drops a letter after 20: the commands give their letters back first.
describe('operator commands on the dead-letter queue', () => {
  it('dlq list gives every letter back before its channel closes', async () => {
    const letters = await givesBack(3, (channel) => listDeadLetters(channel, topology));
    expect(letters.map((dead) => dead.id).sort()).toEqual(['whatsapp:wamid.A', 'whatsapp:wamid.B', 'whatsapp:wamid.C']);
  });

  it('dlq replay --id gives back the letters it was not asked for', async () => {
    const report = await givesBack(3, (channel) => replayDeadLetters(channel, topology, async (_message, _unsent, republish) => ((await republish()) ? 'replayed' : 'unroutable'), ['whatsapp:wamid.missing']));
    expect(report).toEqual({ replayed: [], skipped: [], settling: [], unroutable: [] });
  });

  it('dlq replay says it was Postgres, not the broker, that went away, and gives every letter back', async () => {
    // Nothing listens on port 9: every connection is refused, as from a Postgres that went away.
    const gone = postgres('postgres://postgres@127.0.0.1:9/wagate', { max: 1, connect_timeout: 2, onnotice: () => undefined }) as Sql;
    try {
      const replay = givesBack(3, (channel) => replayDeadLetters(channel, topology, reopenForReplay(gone, 'postgres://postgres:secret@127.0.0.1:9/wagate')));
      await expect(replay).rejects.toMatchObject({
        code: 'DATABASE_UNAVAILABLE',
        message: expect.stringContaining('Postgres at postgres@127.0.0.1:9/wagate cannot be reached'),
      });
      await expect(replay).rejects.toThrow(/run wagate dlq replay again/);
      await givesBack(3, async () => undefined);
    } finally {
      await gone.end({ timeout: 1 });
    }
  });

  it('erase drops the customer’s letters and gives back the others', async () => {
    expect(await givesBack(1, (channel) => dropDeadLetters(channel, topology, (message) => message.from === '15550900002'))).toBe(2);
  });
});

describe('a pass over the dead-letter queue', () => {
  /** The channel as a pass reads it, with a new letter dead-lettered for each one it reads (at most 50), as in a storm. */
  function storming(channel: ConfirmChannel, publisher: ConfirmChannel, arrived: { count: number }): ConfirmChannel {
    return new Proxy(channel, {
      get(target, key) {
        const value = Reflect.get(target, key, target) as unknown;
        if (key !== 'get') return typeof value === 'function' ? value.bind(target) : value;
        return async (queue: string) => {
          const message = await target.get(queue);
          if (message && arrived.count < 50) {
            arrived.count += 1;
            publisher.publish(topology.deadExchange, topology.deadRoutingKey, Buffer.from(JSON.stringify(letter(`wamid.storm${arrived.count}`, '15550900003'))), { persistent: true, messageId: `whatsapp:wamid.storm${arrived.count}` });
            await publisher.waitForConfirms();
          }
          return message;
        };
      },
    });
  }

  it('reads only the letters there when it began, while new ones arrive as fast as it reads', async () => {
    const connection = await amqp.connect(TEST_AMQP_URL);
    try {
      const publisher = await connection.createConfirmChannel();
      const arrived = { count: 0 };
      const before = await withOperatorChannel(operator(topology), async (channel) => (await channel.checkQueue(topology.deadQueue)).messageCount);
      // Each letter read brings one more.
      const listed = await givesBack(2 * before, async (channel) => listDeadLetters(storming(channel, publisher, arrived), topology));
      expect([listed.length, arrived.count]).toEqual([before, before]);
      // The erase's pass: the letters there now are the list's and those that came during it.
      const dropped = await givesBack(4 * before, async (channel) => dropDeadLetters(storming(channel, publisher, arrived), topology, () => false));
      expect([dropped, arrived.count]).toEqual([0, 3 * before]);
    } finally {
      await connection.close();
    }
  });
});
