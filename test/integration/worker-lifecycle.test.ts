import amqp from 'amqplib';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { shardOf } from '../../src/queue/topology';
import { openQueueProbe } from '../support/amqp';
import { startPipeline, type Pipeline, callsTo as callsToRecipient } from '../support/pipeline';
import { spawnWagate } from '../support/process';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

let pipeline: Pipeline;
let proxy: TcpProxy;
/** Proxies and retry-tier settings of single tests, removed in afterAll even when a test fails. */
const extraProxies: TcpProxy[] = [];
const extraRetryDelays: string[] = [];

beforeAll(async () => {
  pipeline = await startPipeline();
  proxy = await startTcpProxy(Number(new URL(pipeline.env.AMQP_URL!).port || 5672), new URL(pipeline.env.AMQP_URL!).hostname);
});

afterAll(async () => {
  proxy.setMode('forward');
  for (const extra of extraProxies) extra.setMode('forward');
  await pipeline.stop();
  await proxy.close();
  for (const extra of extraProxies) await extra.close();
  // Workers with their own tiers declared queues the pipeline's topology does not name.
  const probe = await openQueueProbe();
  for (const delays of extraRetryDelays) await probe.deleteTopology(topologyFromConfig(loadConfig({ ...pipeline.env, RETRY_DELAYS_MS: delays })));
  await probe.close();
});

const statusOf = async (id: string) => (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;
const callsTo = (to: string) => callsToRecipient(pipeline, to);

describe('worker lifecycle', () => {
  it('recovers a lost broker connection, declares the topology again and consumes on', async () => {
    const amqpUrl = new URL(pipeline.env.AMQP_URL!);
    amqpUrl.hostname = '127.0.0.1';
    amqpUrl.port = String(proxy.port);
    const worker = await pipeline.startWorker({ AMQP_URL: amqpUrl.toString() });
    const connected = async () => /wagate_broker_connected\{role="worker"\} 1\b/.test(await worker.metrics.registry.metrics());

    const before = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: before, from: '15550600001', text: '1 coke' });
    await waitFor('the first message', async () => (await statusOf(before)) === 'processed');

    // The broker "goes away" for this worker only: its connection is cut and new ones refused.
    proxy.setMode('refuse');
    await waitFor('the worker to notice', async () => !(await connected()));
    const during = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: during, from: '15550600001', text: '2 coke' });
    expect(await statusOf(during)).toBe('queued');

    proxy.setMode('forward');
    await waitFor('the worker to reconnect', connected, 20000);
    await waitFor('the message sent during the outage', async () => (await statusOf(during)) === 'processed', 20000);
    expect(callsTo('15550600001')).toHaveLength(2);
  });

  it('finishes the message in hand on SIGTERM, then exits 0', async () => {
    for (const worker of pipeline.workers.splice(0)) await worker.stop();
    pipeline.fake.behave({ kind: 'hold' }, 1);
    const child = await spawnWagate('worker', pipeline.env);
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550600002', text: '1 coke' });
    await waitFor('the provider call to be held', () => callsTo('15550600002').length === 1);

    child.child.kill('SIGTERM');
    await waitFor('the worker to take the signal', () => child.logs.some((entry) => entry.msg === 'shutting down gracefully'));
    // Still working: the reply is held at the provider, so the process waits for it.
    expect(child.child.exitCode).toBeNull();
    pipeline.fake.release();

    expect(await child.exited).toBe(0);
    expect(await statusOf(id)).toBe('processed');
    const [reply] = await pipeline.db.sql`SELECT status FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(reply!.status).toBe('sent');
    expect(child.logs.some((entry) => entry.msg === 'worker stopped')).toBe(true);
  });

  it('starts no provider call on SIGTERM that could outlast the drain, and the next worker sends that reply once', async () => {
    for (const worker of pipeline.workers.splice(0)) await worker.stop();
    // A call may last 10 s, the drain 8 s: no call begun after the signal could end within it.
    const child = await spawnWagate('worker', { ...pipeline.env, WORKER_DRAIN_TIMEOUT_MS: '8000', REPLY_TIMEOUT_MS: '10000' });
    pipeline.fake.behave({ kind: 'hold' }, 2);
    const from = '15550600003';
    const first = uniqueWamid();
    const second = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: first, from, text: '1 coke' });
    await postMetaText(pipeline.ingest.baseUrl, { id: second, from, text: '2 coke' });
    await waitFor('the first reply to be held at the provider', () => callsTo(from).length === 1);
    // The second message is in hand behind it, in the sender's turn.
    await waitFor('both messages in hand', async () => /^wagate_worker_messages_in_hand(\{[^}]*\})? 2$/m.test(await (await fetch(child.metricsUrl)).text()));

    child.child.kill('SIGTERM');
    await waitFor('the worker to take the signal', () => child.logs.some((entry) => entry.msg === 'shutting down gracefully'));
    // The first call, begun before the signal, ends; the second message, in hand behind it, is
    // given back unsent. Begun, its call would have been held past the drain and cut off by
    // the exit, its reply left 'sending' for the next worker to call unknown.
    pipeline.fake.release();
    expect(await child.exited).toBe(0);
    expect(callsTo(from)).toHaveLength(1);
    const [held] = await pipeline.db.sql`SELECT status FROM outbound_messages WHERE inbound_message_id = ${second}`;
    expect(held?.status).toBe('pending');
    expect(child.logs.some((entry) => String(entry.msg).startsWith('letting go of this shard on stopping'))).toBe(true);

    // The second hold was never used: the next worker's call is answered (the calls seen so far are forgotten too).
    pipeline.fake.reset();
    await pipeline.startWorker();
    await waitFor('the second message', async () => (await statusOf(second)) === 'processed', 20_000);
    const replies = await pipeline.db.sql`SELECT inbound_message_id, status FROM outbound_messages WHERE inbound_message_id IN (${first}, ${second}) ORDER BY id`;
    expect(replies.map((reply) => reply.status)).toEqual(['sent', 'sent']);
    // One call since: the second reply's, sent once.
    expect(callsTo(from).map((call) => (call.body as { text: { body: string } }).text.body)).toEqual([expect.stringContaining('2 × Coca-Cola')]);
  });

  it('hands a sender to the standby when the active worker loses its broker mid-call, once that call is settled: in order, without a second send', async () => {
    for (const worker of pipeline.workers.splice(0)) await worker.stop();
    proxy.setMode('forward');
    const viaProxy = new URL(pipeline.env.AMQP_URL!);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    // The first worker's broker connection goes through the proxy; the sender is on one of its shards.
    const proxied = await pipeline.startWorker({ AMQP_URL: viaProxy.toString() });
    await pipeline.startWorker();
    const candidates = Array.from({ length: 50 }, (_, n) => `155506003${String(n).padStart(2, '0')}`);
    const from = candidates.find((phone) => proxied.coordinator.owned().includes(shardOf(phone, proxied.topology.shards.length)))!;
    pipeline.fake.behave({ kind: 'hold' }, 1);
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      const id = uniqueWamid();
      ids.push(id);
      await postMetaText(pipeline.ingest.baseUrl, { id, from, text: `${n} coke` });
    }
    await waitFor('the first reply to be held at the provider', () => callsTo(from).length === 1);

    proxy.setMode('refuse');
    // The first worker keeps heartbeating while its call is under way, so for several liveness
    // timeouts the standby may not take the shard and start the sender's next messages beside it
    // (it used to, once the heartbeat had stopped with the connection).
    const shard = shardOf(from, proxied.topology.shards.length);
    const ownerOf = async () => (await pipeline.db.sql<{ owner: string | null }[]>`
      SELECT owner FROM work_shard_owners WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!} AND shard = ${shard}`)[0]?.owner;
    const until = Date.now() + 2 * Number(pipeline.env.WORKER_LIVENESS_TIMEOUT_MS);
    while (Date.now() < until) {
      expect(await ownerOf()).toBe(proxied.memberId);
      expect(callsTo(from)).toHaveLength(1);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    pipeline.fake.release();
    // Settled, the shard goes to the standby, which takes the next messages from the queue.
    await waitFor('every message processed', async () => (await Promise.all(ids.map(statusOf))).every((status) => status === 'processed'), 30000);

    // One call per message: nothing was sent twice, and the stale worker started nothing new.
    const quantities = callsTo(from).map((c) => (c.body as { text: { body: string } }).text.body.match(/: (\d) ×/)?.[1]);
    expect(quantities).toEqual(['1', '2', '3']);
    const replies = await pipeline.db.sql<{ status: string }[]>`
      SELECT status FROM outbound_messages WHERE inbound_message_id = ANY(${ids}) ORDER BY id`;
    expect(replies.map((r) => r.status)).toEqual(['sent', 'sent', 'sent']);
    expect(await Promise.all(ids.map(statusOf))).toEqual(['processed', 'processed', 'processed']);
    proxy.setMode('forward');
  });

  it('waits out a database outage without using up the retry tiers or dead-lettering', async () => {
    for (const worker of pipeline.workers.splice(0)) await worker.stop();
    const pgProxy = await startTcpProxy(5432);
    extraProxies.push(pgProxy);
    const viaProxy = new URL(pipeline.db.url);
    viaProxy.port = String(pgProxy.port);
    // Tiers of 100 and 200 ms: the old behaviour would dead-letter within a second.
    extraRetryDelays.push('100,200');
    const worker = await pipeline.startWorker({ DATABASE_URL: viaProxy.toString(), RETRY_DELAYS_MS: '100,200', DB_CONNECT_TIMEOUT_SECONDS: '1' });
    const retried = async () => (await worker.metrics.workerMessages.get()).values.find((v) => v.labels.outcome === 'retried')?.value ?? 0;
    pgProxy.setMode('refuse');
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550600004', text: '1 coke' });
    // More rounds than there are tiers: each one would have used a try. A round takes well
    // under a second when idle; the bound is for a machine busy with other suites.
    await waitFor('several parked rounds', async () => (await retried()) >= 3, 90_000);
    expect(await statusOf(id)).toBe('queued');

    pgProxy.setMode('forward');
    await waitFor('the message processed once the database is back', async () => (await statusOf(id)) === 'processed', 60_000);
    const dead = (await worker.metrics.workerMessages.get()).values.find((v) => v.labels.outcome === 'dead_lettered')?.value ?? 0;
    expect(dead).toBe(0);
    expect(callsTo('15550600004')).toHaveLength(1);
    for (const running of pipeline.workers.splice(0)) await running.stop();
  }, 240_000);

  it('declares a shard queue deleted under it again and consumes on, without a reconnect', async () => {
    for (const worker of pipeline.workers.splice(0)) await worker.stop();
    const worker = await pipeline.startWorker();
    const from = '15550600005';
    const queue = worker.topology.shards[shardOf(from, worker.topology.shards.length)]!.queue;
    const consumingChannel = worker.broker.channel();
    const admin = await amqp.connect(pipeline.env.AMQP_URL!);
    try {
      const consumers = async () => {
        const channel = await admin.createChannel();
        channel.on('error', () => undefined);
        // A missing queue closes the channel with NOT_FOUND: no consumer.
        const found = await channel.checkQueue(queue).then((answer) => answer.consumerCount, () => 0);
        await channel.close().catch(() => undefined);
        return found;
      };
      const deleting = await admin.createChannel();
      await deleting.deleteQueue(queue);
      await deleting.close();
      await waitFor('the worker to consume the queue again', async () => (await consumers()) === 1, 30_000);

      const id = uniqueWamid();
      await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
      await waitFor('the message processed', async () => (await statusOf(id)) === 'processed');
      expect(worker.broker.channel()).toBe(consumingChannel);
    } finally {
      await admin.close();
      for (const running of pipeline.workers.splice(0)) await running.stop();
    }
  });
});
