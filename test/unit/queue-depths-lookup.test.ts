import type { Broker } from '../../src/queue/broker';
import { createQueueDepthsLookup } from '../../src/queue/depths';
import { topologyNames } from '../../src/queue/topology';

/**
 * The admin stats' queue depths: a broker that stops answering must not hold the stats for
 * minutes, and one merely slower than 2 s must still give its counts while the stats' own
 * database read goes on.
 */
const topology = topologyNames({ prefix: 'wagate', deliveryLimit: 5, retryDelaysMs: [1000], shards: 2 });

function brokerAnswering(blocked = false) {
  const asked: string[] = [];
  const answers: (() => void)[] = [];
  const broker = {
    blockedSince: () => (blocked ? Date.now() : null),
    readyCount: (queue: string) => {
      asked.push(queue);
      return new Promise<number>((resolve) => answers.push(() => resolve(7)));
    },
  } as unknown as Broker;
  const answerAll = () => answers.splice(0).forEach((answer) => answer());
  return { broker, asked, answerAll };
}

const settled = async <T>(promise: Promise<T>): Promise<T | 'pending'> => Promise.race([promise, new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')))]);

it('waits for a slow broker as long as the database read alongside it goes on, and gives its counts', async () => {
  const { broker, answerAll } = brokerAnswering();
  let readEnds!: () => void;
  const read = new Promise<void>((resolve) => (readEnds = resolve));
  const depths = createQueueDepthsLookup(broker, topology, 0)(read);
  expect(await settled(depths)).toBe('pending');
  answerAll();
  // The shards first, then the dead-letter queue.
  await new Promise((resolve) => setImmediate(resolve));
  answerAll();
  expect(await depths).toEqual({ queue: 14, deadLetters: 7 });
  readEnds();
});

it('says the counts are unknown once the read is done and the wait is over, and shares the lookup still under way', async () => {
  const { broker, asked } = brokerAnswering();
  const lookup = createQueueDepthsLookup(broker, topology, 0);
  expect(await lookup(Promise.resolve())).toEqual({ queue: null, deadLetters: null });
  expect(await lookup(Promise.reject(new Error('statement timeout')))).toEqual({ queue: null, deadLetters: null });
  // One lookup for both calls: two shards asked once each, the dead-letter queue not yet.
  expect(asked).toEqual([topology.shards[0]!.queue, topology.shards[1]!.queue]);
});

it('does not ask a broker that blocks the connection, on which no question would be answered', async () => {
  const { broker, asked } = brokerAnswering(true);
  expect(await createQueueDepthsLookup(broker, topology)(new Promise(() => undefined))).toEqual({ queue: null, deadLetters: null });
  expect(asked).toEqual([]);
});
