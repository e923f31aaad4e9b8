import amqp from 'amqplib';
import { moveReadyMessages } from '../../src/queue/move-messages';
import { assertTopology, topologyNames, type TopologyOptions } from '../../src/queue/topology';
import { reshard } from '../../src/worker/reshard';
import { withOperatorChannel } from '../../src/queue/operator-channel';
import { createLogger } from '../../src/telemetry/logger';
import { deleteTopology, TEST_AMQP_URL } from '../support/amqp';
import { createTestDatabase, holdInTransaction, type TestDatabase } from '../support/database';
import { freePort } from '../support/free-port';
import { randomQueuePrefix } from '../support/ingest';

/**
 * What keeps a reshard from undoing itself or waiting for good: one run at a time per group,
 * workers kept paused while an interrupted run's staging queue holds messages, and a move that
 * ends when the messages it counted are gone without being delivered.
 */
let db: TestDatabase;
let connection: amqp.ChannelModel;
let channel: amqp.ConfirmChannel;
const options: TopologyOptions = { prefix: randomQueuePrefix(), deliveryLimit: 5, retryDelaysMs: [1000], shards: 2 };
const topology = topologyNames(options);
const staging = `${topology.exchange}.reshard`;
const lines: string[] = [];
const deps = () => ({
  sql: db.sql, amqpUrl: TEST_AMQP_URL, topology: options, livenessTimeoutMs: 3000, releaseTimeoutMs: 1000, progress: (line: string) => void lines.push(line),
});
const settings = async () => (await db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${options.prefix}`)[0];

beforeAll(async () => {
  db = await createTestDatabase();
  connection = await amqp.connect(TEST_AMQP_URL);
  channel = await connection.createConfirmChannel();
  await assertTopology(channel, topology);
});

afterAll(async () => {
  await channel.deleteQueue(staging).catch(() => undefined);
  await connection.close().catch(() => undefined);
  await deleteTopology(topologyNames({ ...options, shards: 4 }));
  await db.drop();
});

it('refuses a second run while one holds the group, and leaves the workers as they were', async () => {
  // What a first run holds for as long as it runs.
  const first = holdInTransaction(db.sql, (tx) => tx`SELECT pg_advisory_xact_lock(hashtext(${`wagate-reshard:${options.prefix}`}))`);
  await first.held;
  try {
    await expect(reshard(deps(), 4)).rejects.toThrow(`another wagate reshard of "${options.prefix}" is running`);
    expect(await settings()).toBeUndefined();
  } finally {
    await first.release();
  }
});

it('asks the broker before it pauses anything: with a wrong AMQP_URL it stops saying so, the workers as they were', async () => {
  const before = await settings();
  const nobody = `amqp://guest:not-the-password@127.0.0.1:${await freePort()}`;
  const refused = reshard({ ...deps(), amqpUrl: nobody }, 4);
  await expect(refused).rejects.toThrow(/^cannot reach RabbitMQ at amqp:\/\/guest:\*+@127\.0\.0\.1:\d+ \(.*\): check AMQP_URL/);
  await expect(refused).rejects.not.toThrow('not-the-password');
  expect(await settings()).toEqual(before);
});

it.each([
  ['other retry delays', { retryDelaysMs: [1000, 7000] }, /the retry tier queue\(s\) \S+\.retry\.7000ms of this shell's RETRY_DELAYS_MS are not on the broker.*The workers were left as they were/],
  ['another delivery limit', { deliveryLimit: 9 }, /x-delivery-limit/],
])('refuses, before it pauses anything, a shell with %s than the group\'s queues', async (_what, change, message) => {
  const before = await settings();
  // A dlq or erase run from the same shell first declares nothing of its delays' tiers.
  await withOperatorChannel({ url: TEST_AMQP_URL, topology: topologyNames({ ...options, ...change }), log: createLogger('silent', 'test') }, async () => undefined);
  await expect(reshard({ ...deps(), topology: { ...options, ...change } }, 4)).rejects.toThrow(message);
  expect(await settings()).toEqual(before);
  // The check declared nothing of its own: no tier queue of the shell's delays.
  const probe = await connection.createChannel();
  probe.on('error', () => undefined);
  await expect(probe.checkQueue(`${options.prefix}.retry.7000ms`)).rejects.toThrow(/NOT_FOUND/);
});

it('keeps the workers paused when it refuses while an interrupted run\'s staging queue holds messages', async () => {
  // Half gathered by an interrupted run: a sender's earliest message in staging, later ones on its old shard.
  await channel.assertQueue(staging, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  channel.sendToQueue(staging, Buffer.from('{}'), { persistent: true });
  await channel.waitForConfirms();
  // A worker process still consuming an old shard, with no shard on record.
  const stray = await connection.createChannel();
  await stray.consume(topology.shards[0]!.queue, () => undefined);
  try {
    await expect(reshard(deps(), 4)).rejects.toThrow(/left 1 message\(s\) in its staging queue, so the workers stay paused/);
    expect(await settings()).toEqual({ shard_count: 2, paused: true });
  } finally {
    await stray.close();
  }
});

it('ends a move when the messages it counted expire before they are delivered', async () => {
  const [source, target] = [`${options.prefix}.move-source`, `${options.prefix}.move-target`];
  try {
    await channel.assertQueue(source, { durable: true });
    await channel.assertQueue(target, { durable: true });
    channel.sendToQueue(source, Buffer.from('first'), { persistent: true, messageId: 'first' });
    // Counted while the first is at the head; dropped undelivered once they reach it.
    for (let i = 0; i < 3; i += 1) channel.sendToQueue(source, Buffer.from('expires'), { persistent: true, messageId: `expires-${i}`, expiration: '1' });
    await channel.waitForConfirms();
    expect((await channel.checkQueue(source)).messageCount).toBe(4);
    expect(await moveReadyMessages(connection, source, () => ({ exchange: '', routingKey: target }))).toBe(1);
    expect((await channel.checkQueue(target)).messageCount).toBe(1);
  } finally {
    await channel.deleteQueue(source).catch(() => undefined);
    await channel.deleteQueue(target).catch(() => undefined);
  }
}, 20_000);
