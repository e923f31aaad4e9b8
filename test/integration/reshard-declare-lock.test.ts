import amqp from 'amqplib';
import { ensureShardCount } from '../../src/ledger/shard-count';
import { declareShardTopology } from '../../src/ledger/shard-topology';
import { inspectQueue } from '../../src/queue/inspect-queue';
import { routingKeyFor, shardOf, topologyNames, type TopologyOptions } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { reshard } from '../../src/worker/reshard';
import { bodyOf, deleteTopology, openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, holdInTransaction, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { runWagatePausedAt } from '../support/process';
import { waitFor } from '../support/wait';

/**
 * A shrinking reshard deletes the surplus shard queues. A process on the old count that read
 * the count just before, and declared its queues just after the move had deleted them, brought
 * one back, bound: an old-count ingest's publishes then waited there for a worker that never
 * came. Each process now reads the count and declares its queues under the group's reshard
 * lock, shared, so a reshard runs wholly before or wholly after.
 */
let db: TestDatabase;
let connection: amqp.ChannelModel;
let probe: QueueProbe;
let env: Record<string, string>;
let options: TopologyOptions;
const log = createLogger('silent', 'test');

beforeAll(async () => {
  db = await createTestDatabase();
  env = testEnv(db.url, { WORK_SHARDS: '4', RETRY_DELAYS_MS: '1000', QUEUE_DELIVERY_LIMIT: '5' });
  options = { prefix: env.QUEUE_PREFIX!, deliveryLimit: 5, retryDelaysMs: [1000], shards: 4 };
  connection = await amqp.connect(TEST_AMQP_URL);
  probe = await openQueueProbe();
});

afterAll(async () => {
  await deleteTopology(topologyNames(options));
  await probe.close();
  await connection.close();
  await db.drop();
});

/** A process on `count` shards connecting: what its broker setup runs. */
async function connectWith(count: number): Promise<void> {
  const channel = await connection.createChannel();
  try {
    await declareShardTopology(db.sql, channel, topologyNames({ ...options, shards: count }), options.prefix, log);
  } finally {
    await channel.close().catch(() => undefined);
  }
}

async function existing(): Promise<string[]> {
  const found: string[] = [];
  for (const shard of topologyNames(options).shards) if (await inspectQueue(connection, shard.queue)) found.push(shard.queue);
  return found;
}

const queues = (count: number) => topologyNames({ ...options, shards: count }).shards.map((shard) => shard.queue);

/** A sender on each of the four shards. */
const SENDERS = [0, 1, 2, 3].map((shard) => {
  for (let n = 0; ; n += 1) if (shardOf(`1555001${n}`, 4) === shard) return `1555001${n}`;
});

function message(sender: string): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, source: 'whatsapp', messageId: `wamid.${sender}`, from: sender, senderKey: sender, business: '1', contactName: null, type: 'text', timestampSeconds: null, receivedAt: '2026-12-01T10:00:00.000Z', content: {} }));
}

it('declares nothing while a reshard runs, then only the queues of the count it stored', async () => {
  await connectWith(4);
  await ensureShardCount(db.sql, options.prefix, 4);
  expect(await existing()).toEqual(queues(4));

  const result = await runWagatePausedAt('reshard.before-move', ['reshard', '--to', '2'], env, async () => {
    // The workers are paused and nothing is moved yet: a process on four shards connects.
    await expect(connectWith(4)).rejects.toThrow(`a wagate reshard of "${options.prefix}" is running (it holds the group's reshard lock in Postgres): its shard queues are declared once it has finished`);
  });
  expect(result.stdout).toContain('resharded from 4 to 2');
  expect(result.code).toBe(0);
  expect(await existing()).toEqual(queues(2));

  // Tried again once the reshard has finished, it declares only what the stored count keeps.
  await connectWith(4);
  expect(await existing()).toEqual(queues(2));
}, 90_000);

it('has a reshard wait for a declare under way, and move what reached the queues it declared', async () => {
  const prefix = options.prefix;
  await db.sql`UPDATE work_shard_settings SET shard_count = 4 WHERE queue_prefix = ${prefix}`;
  await connectWith(4);
  // A process holds the lock between its read of the count (four) and its declare.
  const declaring = holdInTransaction(db.sql, (tx) => tx`SELECT pg_advisory_xact_lock_shared(hashtext(${`wagate-reshard:${prefix}`}))`);
  await declaring.held;
  const lines: string[] = [];
  const running = reshard({ sql: db.sql, amqpUrl: TEST_AMQP_URL, topology: options, livenessTimeoutMs: 3000, releaseTimeoutMs: 1000, progress: (line) => void lines.push(line) }, 2);
  try {
    await waitFor('the reshard to wait for the lock', async () =>
      (await db.sql`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).length > 0);
    // Its declare and an old-count ingest's publishes, to every shard of four.
    const old = topologyNames(options);
    const channel = await connection.createConfirmChannel();
    for (const sender of SENDERS) channel.publish(old.exchange, routingKeyFor(old, sender), message(sender), { persistent: true, mandatory: true });
    await channel.waitForConfirms();
    await channel.close();
    expect(lines).toEqual([]);
  } finally {
    await declaring.release();
  }
  await expect(running).resolves.toMatchObject({ from: 4, to: 2, moved: SENDERS.length });
  expect(await existing()).toEqual(queues(2));
  const now = topologyNames({ ...options, shards: 2 });
  const found: Record<string, string[]> = {};
  for (const shard of now.shards) found[shard.routingKey] = (await probe.drain(shard.queue)).map((delivered) => String(bodyOf(delivered).senderKey));
  const expected: Record<string, string[]> = Object.fromEntries(now.shards.map((shard) => [shard.routingKey, [] as string[]]));
  for (const sender of SENDERS) expected[routingKeyFor(now, sender)]!.push(sender);
  expect(found).toEqual(expected);
}, 90_000);
