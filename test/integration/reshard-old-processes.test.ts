import amqp from 'amqplib';
import { TEST_AMQP_URL } from '../support/amqp';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { runWagate } from '../support/process';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait';

/**
 * After `wagate reshard --to 2` from 4, an ingest and a worker still on WORK_SHARDS=4 lose
 * their broker connection and reconnect. They must not declare the deleted shard queues
 * again: an old ingest's publishes would then wait there for a worker that never comes,
 * instead of returning to its outbox as unroutable.
 */
let pipeline: Pipeline;
let proxy: TcpProxy;

beforeAll(async () => {
  const through = await startProxyFor(TEST_AMQP_URL, 5672);
  proxy = through.proxy;
  pipeline = await startPipeline({ WORK_SHARDS: '4', AMQP_URL: through.url });
  await pipeline.startWorker();
}, 120_000);

afterAll(async () => {
  await pipeline.stop();
  await proxy.close();
});

async function existingQueues(names: string[]): Promise<string[]> {
  const connection = await amqp.connect(TEST_AMQP_URL);
  try {
    const found: string[] = [];
    for (const name of names) {
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      if (await channel.checkQueue(name).then(() => true, () => false)) {
        found.push(name);
        await channel.close();
      }
    }
    return found;
  } finally {
    await connection.close();
  }
}

it('keeps the queues a shrink deleted deleted when processes on the old count reconnect', async () => {
  const result = await runWagate(['reshard', '--to', '2'], pipeline.env);
  expect(result.stdout).toContain('resharded from 4 to 2');
  expect(result.code).toBe(0);
  const shardQueues = pipeline.ingest.topology.shards.map((shard) => shard.queue);
  expect(await existingQueues(shardQueues)).toEqual(shardQueues.slice(0, 2));

  const brokers = [pipeline.ingest.broker, pipeline.workers[0]!.broker];
  const reconnected = brokers.map((broker) => new Promise<void>((resolve) => broker.onConnected(() => resolve())));
  proxy.setMode('refuse');
  await waitFor('the old processes to lose the broker', () => brokers.every((broker) => !broker.isConnected()));
  proxy.setMode('forward');
  await Promise.all(reconnected);

  expect(await existingQueues(shardQueues)).toEqual(shardQueues.slice(0, 2));
}, 180_000);

it('keeps them deleted when an operator command runs during an interrupted shrink', async () => {
  // A shrink from 4 to 2 that had gathered the old shards and deleted the surplus, then stopped.
  const prefix = pipeline.env.QUEUE_PREFIX!;
  await pipeline.db.sql`UPDATE work_shard_settings SET shard_count = 4, gathered_for = 2, paused = true WHERE queue_prefix = ${prefix}`;
  try {
    const shardQueues = pipeline.ingest.topology.shards.map((shard) => shard.queue);
    const result = await runWagate(['dlq', 'list'], pipeline.env);
    expect(result.stdout).toContain('the dead-letter queue is empty');
    expect(result.code).toBe(0);
    expect(await existingQueues(shardQueues)).toEqual(shardQueues.slice(0, 2));
  } finally {
    await pipeline.db.sql`UPDATE work_shard_settings SET shard_count = 2, gathered_for = NULL, paused = false WHERE queue_prefix = ${prefix}`;
  }
}, 120_000);
