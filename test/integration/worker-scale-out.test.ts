import type { RunningWorker } from '../../src/commands/worker';
import { openQueueProbe } from '../support/amqp';
import { consumerPrefetches } from '../support/rabbitmqctl';
import { startTcpProxy } from '../support/tcp-proxy';
import { startPipeline, type Pipeline } from '../support/pipeline';
import {
  allIds,
  counter,
  extraClaims,
  oneConsumerPerShard,
  orderAndCallsPerSender,
  sendersNamed,
  sendRounds,
  split,
  unfinished,
  type SentBySender,
} from '../support/scale-out';
import { waitFor } from '../support/wait';

const SHARDS = 6;
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ WORK_SHARDS: String(SHARDS) });
});

afterAll(async () => {
  await pipeline.stop();
});

afterEach(async () => {
  for (const worker of pipeline.workers.splice(0)) await worker.stop();
  pipeline.fake.reset();
});

const SETTLE_MS = 30_000;

async function waitForSplit(workers: RunningWorker[], sizes: number[]): Promise<void> {
  await waitFor(`shards split ${sizes.join('/')}`, async () => {
    const now = split(workers, SHARDS);
    return now.coversEachOnce && [...now.sizes].sort().join() === [...sizes].sort().join() && (await oneConsumerPerShard(workers[0]!));
  }, SETTLE_MS);
}

async function waitUntilFinished(sent: SentBySender): Promise<void> {
  await waitFor('every message finished', async () => (await unfinished(pipeline.db.sql, allIds(sent))) === 0, 60_000);
}

/** "2 pizzas" then "cancel" from every sender: one order each, and it is the one cancelled. */
async function expectOneCancelledOrderEach(sent: SentBySender): Promise<void> {
  const rows = await pipeline.db.sql<{ phone_number: string; status: string; message_id: string; cancelled_by_message_id: string | null }[]>`
    SELECT phone_number, status, message_id, cancelled_by_message_id FROM orders WHERE phone_number = ANY(${[...sent.keys()]})`;
  const wrong = [...sent].filter(([from, [order, cancel]]) => {
    const mine = rows.filter((row) => row.phone_number === from);
    return mine.length !== 1 || mine[0]!.message_id !== order || mine[0]!.status !== 'cancelled' || mine[0]!.cancelled_by_message_id !== cancel;
  });
  expect(wrong.map(([from]) => from)).toEqual([]);
}

/** One provider call per reply, and one reply per message: nothing was sent twice. */
function expectOneCallPerMessage(sent: SentBySender): void {
  const calls = pipeline.fake.calls();
  const wrong = [...sent].filter(([from, ids]) => calls.filter((call) => (call.body as { to?: string }).to === from).length !== ids.length);
  expect(wrong.map(([from]) => from)).toEqual([]);
}

describe('worker scale-out', () => {
  it('splits the shards fairly over two and then three workers, each message processed once and in order per sender', async () => {
    const two = [await pipeline.startWorker(), await pipeline.startWorker()];
    await waitForSplit(two, [3, 3]);
    const first = await sendRounds(pipeline.ingest.baseUrl, sendersNamed('1555101', 30), ['2 margherita', 'cancel']);
    await waitUntilFinished(first);

    const three = [...two, await pipeline.startWorker()];
    await waitForSplit(three, [2, 2, 2]);
    const second = await sendRounds(pipeline.ingest.baseUrl, sendersNamed('1555102', 30), ['2 margherita', 'cancel']);
    await waitUntilFinished(second);

    for (const sent of [first, second]) {
      await expectOneCancelledOrderEach(sent);
      expectOneCallPerMessage(sent);
      expect(await extraClaims(pipeline.db.sql, allIds(sent))).toBe(0);
    }
    // The newcomer did its share of the second load.
    expect(await counter(three[2]!, 'processed')).toBeGreaterThan(0);
  }, 120_000);

  it('takes free shards at its first heartbeat, without waiting out the liveness timeout', async () => {
    // startWorker waits up to 30 s for the shards: far less than this timeout, which a worker
    // that took the free shards for an expired member's would wait out first.
    const worker = await pipeline.startWorker({ WORKER_LIVENESS_TIMEOUT_MS: '600000' });
    expect(worker.coordinator.owned()).toHaveLength(SHARDS);
  }, 60_000);

  it('lets a worker added during load take shards and process messages', async () => {
    const first = await pipeline.startWorker();
    await waitForSplit([first], [SHARDS]);
    // Each sender's replies take 100 ms one after another: a backlog builds up behind them.
    pipeline.fake.behave({ kind: 'delay', ms: 100 });
    const senders = sendersNamed('1555103', 24);
    const texts = Array.from({ length: 10 }, (_, index) => `${index + 1} coke`);
    const sent: SentBySender = new Map();
    // The first half builds a backlog; the newcomer joins while it drains; the second half
    // arrives once the group has settled, so the newcomer certainly has messages of its own.
    const firstHalf = sendRounds(pipeline.ingest.baseUrl, senders, texts.slice(0, 5), sent);
    await waitFor('the load under way', () => (sent.get(senders[0]!)?.length ?? 0) >= 2, SETTLE_MS);
    const added = await pipeline.startWorker();
    await firstHalf;
    await waitForSplit([first, added], [3, 3]);
    await sendRounds(pipeline.ingest.baseUrl, senders, texts.slice(5), sent);
    await waitUntilFinished(sent);

    expect(await counter(added, 'processed')).toBeGreaterThan(0);
    expect(await extraClaims(pipeline.db.sql, allIds(sent))).toBe(0);
    expect(await orderAndCallsPerSender(pipeline.db.sql, pipeline.fake, sent)).toEqual([]);
  }, 120_000);

  it('gives each shard consumer its worker\'s share of WORKER_MESSAGES_IN_HAND, restarting the consumers it keeps when a worker joins under load', async () => {
    // One worker of six shards: 12 / 6 = 2 each. Two workers of three: 12 / 3 = 4 each.
    const settings = { WORKER_PREFETCH: '2', WORKER_MESSAGES_IN_HAND: '12' };
    const queues = pipeline.ingest.topology.shards.map((shard) => shard.queue);
    const prefetchesAre = (expected: number) => async () =>
      [...(await consumerPrefetches(queues)).values()].every((counts) => counts.length === 1 && counts[0] === expected);
    const first = await pipeline.startWorker(settings);
    await waitForSplit([first], [SHARDS]);
    await waitFor('every shard consumer at prefetch 2', prefetchesAre(2), SETTLE_MS);

    pipeline.fake.behave({ kind: 'delay', ms: 20 });
    const senders = sendersNamed('1555107', 24);
    const texts = Array.from({ length: 8 }, (_, index) => `${index + 1} coke`);
    const sent: SentBySender = new Map();
    const load = sendRounds(pipeline.ingest.baseUrl, senders, texts, sent);
    await waitFor('the load under way', () => (sent.get(senders[0]!)?.length ?? 0) >= 2, SETTLE_MS);
    const added = await pipeline.startWorker(settings);
    await waitForSplit([first, added], [3, 3]);
    // The first worker's three remaining consumers were started at 2: they restart at 4.
    await waitFor('every shard consumer at prefetch 4', prefetchesAre(4), 60_000);
    await load;
    await waitUntilFinished(sent);

    expect(await extraClaims(pipeline.db.sql, allIds(sent))).toBe(0);
    expect(await orderAndCallsPerSender(pipeline.db.sql, pipeline.fake, sent)).toEqual([]);
    for (const worker of [first, added]) expect(await counter(worker, 'dead_lettered')).toBe(0);
  }, 120_000);

  it('hands shards over 10 times under load at the default prefetch without dead-lettering, reordering or claiming a message twice', async () => {
    const steady = [await pipeline.startWorker(), await pipeline.startWorker()];
    await waitForSplit(steady, [3, 3]);
    // Replies take a little while, so that every hand-over finds messages in hand.
    pipeline.fake.behave({ kind: 'delay', ms: 15 });
    const senders = sendersNamed('1555104', 30);
    const texts = Array.from({ length: 12 }, (_, index) => `${index + 1} coke`);
    const sent: SentBySender = new Map();
    let loading = true;
    const load = sendRounds(pipeline.ingest.baseUrl, senders, texts, sent).finally(() => (loading = false));
    let rebalances = 0;
    // Each cycle is two rebalances: a third worker joins (and takes 2 shards), then leaves.
    while (rebalances < 10) {
      const extra = await pipeline.startWorker();
      await waitForSplit([...steady, extra], [2, 2, 2]);
      await extra.stop();
      pipeline.workers.splice(pipeline.workers.indexOf(extra), 1);
      await waitForSplit(steady, [3, 3]);
      rebalances += 2;
    }
    await load;
    expect(loading).toBe(false);
    await waitUntilFinished(sent);

    const released = await steady[0]!.metrics.rebalances.get();
    expect(released.values.reduce((sum, v) => sum + v.value, 0)).toBeGreaterThan(0);
    const probe = await openQueueProbe();
    try {
      expect(await probe.readyCount(pipeline.ingest.topology.deadQueue)).toBe(0);
    } finally {
      await probe.close();
    }
    for (const worker of steady) expect(await counter(worker, 'dead_lettered')).toBe(0);
    expect(await extraClaims(pipeline.db.sql, allIds(sent))).toBe(0);
    expect(await orderAndCallsPerSender(pipeline.db.sql, pipeline.fake, sent)).toEqual([]);
  }, 180_000);

  it('keeps every shard where it was through a Postgres outage longer than the liveness timeout', async () => {
    const pgProxy = await startTcpProxy(5432);
    try {
      const viaProxy = new URL(pipeline.db.url);
      viaProxy.port = String(pgProxy.port);
      const overrides = { DATABASE_URL: viaProxy.toString(), DB_CONNECT_TIMEOUT_SECONDS: '1' };
      const workers = [await pipeline.startWorker(overrides), await pipeline.startWorker(overrides)];
      // Settled: both see a group of two, and a round each changes nothing more.
      await waitFor('a group of two', async () => (await Promise.all(workers.map((w) => w.metrics.groupMembers.get()))).every((g) => g.values[0]?.value === 2), 30_000);
      // A round waits for a take a heartbeat at most: settled once the two hold every shard between them.
      await waitFor('every shard held', async () => {
        for (const worker of workers) await worker.coordinator.tick();
        return workers.reduce((sum, worker) => sum + worker.coordinator.owned().length, 0) === pipeline.ingest.topology.shards.length;
      }, 30_000);
      const before = workers.map((worker) => worker.coordinator.owned().join());
      const rebalances = async () => Promise.all(workers.map(async (w) => (await w.metrics.rebalances.get()).values.reduce((sum, v) => sum + v.value, 0)));
      const rebalancesBefore = await rebalances();
      const liveMembers = async () => (await pipeline.db.sql<{ n: number }[]>`
        SELECT count(*)::integer AS n FROM worker_members
        WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!} AND heartbeat_at > now() - interval '2 seconds'`)[0]!.n;

      pgProxy.setMode('refuse');
      await waitFor('every heartbeat to expire', async () => (await liveMembers()) === 0, 30_000);
      pgProxy.setMode('forward');
      await waitFor('both workers to see each other again', async () =>
        (await liveMembers()) === 2 && (await Promise.all(workers.map((w) => w.metrics.groupMembers.get()))).every((g) => g.values[0]?.value === 2), 30_000);
      // A few more rounds, in which a takeover would have happened.
      const ticks = workers.map((w) => w.coordinator.tick());
      await Promise.all(ticks);
      await Promise.all(workers.map((w) => w.coordinator.tick()));

      expect(workers.map((worker) => worker.coordinator.owned().join())).toEqual(before);
      expect(await rebalances()).toEqual(rebalancesBefore);
      const sent = await sendRounds(pipeline.ingest.baseUrl, sendersNamed('1555106', 8), ['1 coke']);
      await waitUntilFinished(sent);
    } finally {
      for (const worker of pipeline.workers.splice(0)) await worker.stop();
      await pgProxy.close();
    }
  }, 120_000);
});
