import { spawn } from 'node:child_process';
import amqp from 'amqplib';
import { ensureShardCount } from '../../src/ledger/shard-count';
import { assertTopology, routingKeyFor, shardOf, topologyNames } from '../../src/queue/topology';
import { bodyOf, deleteTopology, openQueueProbe, TEST_AMQP_URL } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { MAIN_JS, runWagate, runWagatePausedAt } from '../support/process';
import { waitFor } from '../support/wait';

/**
 * A reshard pauses every worker of its group before it moves anything. An operator's Ctrl-C
 * while it waited for them to let go ended the command at once and left the whole group
 * paused, consuming nothing, with nothing said; now it resumes the workers and says so.
 */
let db: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  // A live worker's heartbeat stays fresh for a minute: the reshard waits for it to let go.
  env = testEnv(db.url, { WORK_SHARDS: '2', RETRY_DELAYS_MS: '1000', QUEUE_DELIVERY_LIMIT: '5', WORKER_LIVENESS_TIMEOUT_MS: '60000' });
});

/** A group of its own, sharded 4 ways, for the move. */
const moving = () => testEnv(db.url, { WORK_SHARDS: '4', RETRY_DELAYS_MS: '1000', QUEUE_DELIVERY_LIMIT: '5' });
let movingEnv: Record<string, string> | undefined;

afterAll(async () => {
  await deleteTopology(topologyNames({ prefix: env.QUEUE_PREFIX!, deliveryLimit: 5, retryDelaysMs: [1000], shards: 2 }));
  if (movingEnv) {
    for (const shards of [2, 4]) await deleteTopology(topologyNames({ prefix: movingEnv.QUEUE_PREFIX!, deliveryLimit: 5, retryDelaysMs: [1000], shards }));
  }
  await db.drop();
});

it('resumes the workers when stopped by SIGINT while waiting for them to let go, nothing moved', async () => {
  const prefix = env.QUEUE_PREFIX!;
  await ensureShardCount(db.sql, prefix, 2);
  await db.sql`INSERT INTO worker_members (queue_prefix, member_id) VALUES (${prefix}, 'worker-a')`;
  await db.sql`UPDATE work_shard_owners SET owner = 'worker-a' WHERE queue_prefix = ${prefix} AND shard = 0`;
  // Its queues, as the group's processes declared them.
  const declared = spawn(process.execPath, [MAIN_JS, 'dlq', 'list'], { env: { PATH: process.env.PATH ?? '', ...env } });
  await new Promise((resolve) => declared.on('exit', resolve));

  const child = spawn(process.execPath, [MAIN_JS, 'reshard', '--to', '4'], { env: { PATH: process.env.PATH ?? '', ...env } });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await waitFor('the reshard to wait for the workers', async () => stderr.includes('waiting for them to release'));
  expect((await db.sql`SELECT paused FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0]).toEqual({ paused: true });

  child.kill('SIGINT');
  expect(await exited).toBe(1);
  expect(stderr).toMatch(/SIGINT: stopping at the next safe point/);
  expect(stderr).toMatch(/failed: stopped by SIGINT; nothing was moved and the workers resume\n/);
  expect((await db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0]).toEqual({ shard_count: 2, paused: false });
});

it('resumes the workers when signalled as the move begins, before it has gathered anything', async () => {
  const group = moving();
  const prefix = group.QUEUE_PREFIX!;
  await ensureShardCount(db.sql, prefix, 4);
  try {
    const connection = await amqp.connect(TEST_AMQP_URL);
    const channel = await connection.createChannel();
    await assertTopology(channel, topologyNames({ prefix, deliveryLimit: 5, retryDelaysMs: [1000], shards: 4 }));
    await connection.close();
    // Handled once the process goes on past this point: in the steps that open the move.
    const stopped = await runWagatePausedAt('reshard.before-move', ['reshard', '--to', '2'], group, async (pid) => void process.kill(pid, 'SIGINT'));
    expect([stopped.code, stopped.stderr]).toEqual([1, expect.stringContaining('failed: stopped by SIGINT; nothing was moved and the workers resume')]);
    expect((await db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0]).toEqual({ shard_count: 4, paused: false });
  } finally {
    for (const shards of [2, 4]) await deleteTopology(topologyNames({ prefix, deliveryLimit: 5, retryDelaysMs: [1000], shards }));
    // The move's staging queue, declared before it stopped.
    const connection = await amqp.connect(TEST_AMQP_URL);
    const channel = await connection.createChannel();
    await channel.deleteQueue(`${topologyNames({ prefix, deliveryLimit: 5, retryDelaysMs: [1000], shards: 2 }).exchange}.reshard`);
    await connection.close();
  }
}, 60_000);

it('stops between two old shards when signalled while gathering, the workers paused, and a rerun keeps each sender\'s order', async () => {
  movingEnv = moving();
  const options = { prefix: movingEnv.QUEUE_PREFIX!, deliveryLimit: 5, retryDelaysMs: [1000], shards: 4 };
  const four = topologyNames(options);
  await ensureShardCount(db.sql, options.prefix, 4);
  // A sender on each old shard, three numbered messages each.
  const senders = [0, 1, 2, 3].map((shard) => {
    for (let n = 0; ; n += 1) if (shardOf(`1555002${n}`, 4) === shard) return `1555002${n}`;
  });
  const connection = await amqp.connect(TEST_AMQP_URL);
  const probe = await openQueueProbe();
  try {
    const channel = await connection.createConfirmChannel();
    await assertTopology(channel, four);
    for (let n = 1; n <= 3; n += 1) {
      for (const sender of senders) {
        const body = { v: 1, source: 'whatsapp', messageId: `wamid.${sender}.${n}`, from: sender, senderKey: sender, business: '1', contactName: null, type: 'text', timestampSeconds: null, receivedAt: '2026-12-01T10:00:00.000Z', content: {} };
        channel.publish(four.exchange, routingKeyFor(four, sender), Buffer.from(JSON.stringify(body)), { persistent: true, mandatory: true, messageId: `whatsapp:${body.messageId}` });
      }
    }
    await channel.waitForConfirms();

    const stopped = await runWagatePausedAt('reshard.gathering', ['reshard', '--to', '2'], movingEnv, async (pid) => void process.kill(pid, 'SIGINT'));
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain(`failed: stopped by SIGINT while gathering the old shards; the workers of "${options.prefix}" stay paused: run wagate reshard --to 2 again`);
    expect((await db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${options.prefix}`)[0]).toEqual({ shard_count: 4, paused: true });

    const again = await runWagate(['reshard', '--to', '2'], movingEnv);
    expect([again.code, again.stdout]).toEqual([0, expect.stringContaining('resharded from 4 to 2: moved 12 message(s)')]);
    const bySender: Record<string, string[]> = {};
    for (const shard of topologyNames({ ...options, shards: 2 }).shards) {
      for (const delivered of await probe.drain(shard.queue)) {
        const body = bodyOf(delivered);
        (bySender[String(body.senderKey)] ??= []).push(String(body.messageId));
      }
    }
    expect(bySender).toEqual(Object.fromEntries(senders.map((sender) => [sender, [1, 2, 3].map((n) => `wamid.${sender}.${n}`)])));
  } finally {
    await probe.close();
    await connection.close();
  }
}, 90_000);
