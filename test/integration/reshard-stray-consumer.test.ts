import amqp, { type ChannelModel } from 'amqplib';
import { assertTopology, topologyNames } from '../../src/queue/topology';
import { reshard, type ReshardDeps } from '../../src/worker/reshard';
import { deleteTopology, TEST_AMQP_URL } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { randomQueuePrefix } from '../support/ingest';

/**
 * A worker whose heartbeat expired (frozen, or cut off from Postgres but not from the broker)
 * holds no shard on record but still consumes its queue. The move would wait behind it for
 * good, with every worker paused: the reshard refuses instead, names the queue, and resumes them.
 */
const options = { prefix: randomQueuePrefix(), deliveryLimit: 5, retryDelaysMs: [1000], shards: 2 };
let db: TestDatabase;
let connection: ChannelModel;

beforeAll(async () => {
  db = await createTestDatabase();
  connection = await amqp.connect(TEST_AMQP_URL);
  const channel = await connection.createChannel();
  await assertTopology(channel, topologyNames(options));
  await channel.close();
});

afterAll(async () => {
  await connection.close();
  await deleteTopology(topologyNames({ ...options, shards: 3 }));
  await db.drop();
});

function deps(lines: string[]): ReshardDeps {
  return { sql: db.sql, amqpUrl: TEST_AMQP_URL, topology: options, livenessTimeoutMs: 1_000, releaseTimeoutMs: 1_000, progress: (line) => lines.push(line) };
}

it('refuses while a shard queue still has a consumer that holds no shard on record, and resumes the workers', async () => {
  const stray = await connection.createChannel();
  const queue = topologyNames(options).shards[1]!.queue;
  const { consumerTag } = await stray.consume(queue, () => undefined);
  const lines: string[] = [];
  await expect(reshard(deps(lines), 3)).rejects.toThrow(`these shard queues still have consumers: ${queue} (1); nothing was moved and the workers resume`);
  const [settings] = await db.sql<{ shard_count: number; paused: boolean }[]>`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${options.prefix}`;
  expect(settings).toEqual({ shard_count: 2, paused: false });

  // Once that worker is gone, the same command goes through.
  await stray.cancel(consumerTag);
  await stray.close();
  expect(await reshard(deps(lines), 3)).toMatchObject({ from: 2, to: 3 });
  const [after] = await db.sql<{ shard_count: number; paused: boolean }[]>`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${options.prefix}`;
  expect(after).toEqual({ shard_count: 3, paused: false });
}, 60_000);
