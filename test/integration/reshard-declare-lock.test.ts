import amqp from 'amqplib';
import { closeDatabase, createDatabase } from '../../src/db/client';
import { ensureShardCount } from '../../src/ledger/shard-count';
import { declareShardTopology } from '../../src/ledger/shard-topology';
import { inspectQueue } from '../../src/queue/inspect-queue';
import { routingKeyFor, shardOf, topologyNames, type TopologyOptions } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { reshard } from '../../src/worker/reshard';
import { bodyOf, deleteTopology, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { type TestDatabase } from '../support/database';
import { freePort } from '../support/free-port';
import { runWagate, runWagatePausedAt } from '../support/process';
import { startReshardGroup, type ReshardGroup } from '../support/reshard-group';
import { waitFor } from '../support/wait';

/**
 * A shrinking reshard deletes the surplus shard queues. A process on the old count that read
 * the count just before, and declared its queues just after the move had deleted them, brought
 * one back, bound: an old-count ingest's publishes then waited there for a worker that never
 * came. Each process now reads the count and declares its queues under the group's reshard
 * lock, shared, so a reshard runs wholly before or wholly after.
 */
let group: ReshardGroup;
let db: TestDatabase;
let connection: amqp.ChannelModel;
let probe: QueueProbe;
let env: Record<string, string>;
let options: TopologyOptions;
const log = createLogger('silent', 'test');

beforeAll(async () => {
  group = await startReshardGroup();
  ({ db, connection, probe, env, options } = group);
});

afterAll(async () => {
  await group?.close();
});

/** A process on `count` shards connecting: what its broker setup runs (on a channel `wrap` may hold up). */
async function connectWith(count: number, wrap: (channel: amqp.Channel) => amqp.Channel = (channel) => channel): Promise<void> {
  const channel = await connection.createChannel();
  try {
    await declareShardTopology(db.sql, wrap(channel), topologyNames({ ...options, shards: count }), options.prefix, log);
  } finally {
    await channel.close().catch(() => undefined);
  }
}

/** The channel, with its queue bindings held until `until` settles: a declare under way. */
function bindingHeld(channel: amqp.Channel, until: Promise<void>): amqp.Channel {
  return new Proxy(channel, {
    get(target, property, receiver) {
      if (property === 'bindQueue') return async (...args: Parameters<amqp.Channel['bindQueue']>) => (await until, target.bindQueue(...args));
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function existing(): Promise<string[]> {
  const found: string[] = [];
  for (const shard of topologyNames(options).shards) if (await inspectQueue(connection, shard.queue)) found.push(shard.queue);
  return found;
}

const queues = (count: number) => topologyNames({ ...options, shards: count }).shards.map((shard) => shard.queue);

/** What the shards of `topology` hold, drained: each sender's message ids, in queue order. */
async function idsBySender(topology: ReturnType<typeof topologyNames>): Promise<Record<string, string[]>> {
  const found: Record<string, string[]> = {};
  for (const shard of topology.shards) {
    for (const delivered of await probe.drain(shard.queue)) {
      const body = bodyOf(delivered);
      (found[String(body.senderKey)] ??= []).push(String(body.messageId));
    }
  }
  return found;
}

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
  // Another process on four shards has read the count and is declaring its queues, held up by the broker.
  let letBind: () => void = () => undefined;
  const declaring = connectWith(4, (channel) => bindingHeld(channel, new Promise<void>((resolve) => (letBind = resolve))));
  await waitFor('the declare to hold the lock', async () => (await db.sql`
    SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).length > 0);
  const lines: string[] = [];
  const running = reshard({ sql: db.sql, amqpUrl: TEST_AMQP_URL, topology: options, livenessTimeoutMs: 3000, releaseTimeoutMs: 1000, progress: (line) => void lines.push(line) }, 2);
  await waitFor('the reshard to wait for the lock', async () => (await db.sql`
    SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND NOT granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).length > 0);
  expect(lines).toEqual([]);
  // An old-count ingest publishes to every shard of four; then the declare finishes.
  const old = topologyNames(options);
  const channel = await connection.createConfirmChannel();
  for (const sender of SENDERS) channel.publish(old.exchange, routingKeyFor(old, sender), message(sender), { persistent: true, mandatory: true });
  await channel.waitForConfirms();
  await channel.close();
  letBind();
  await declaring;

  await expect(running).resolves.toMatchObject({ from: 4, to: 2, moved: SENDERS.length });
  expect(await existing()).toEqual(queues(2));
  const now = topologyNames({ ...options, shards: 2 });
  const found: Record<string, string[]> = {};
  for (const shard of now.shards) found[shard.routingKey] = (await probe.drain(shard.queue)).map((delivered) => String(bodyOf(delivered).senderKey));
  const expected: Record<string, string[]> = Object.fromEntries(now.shards.map((shard) => [shard.routingKey, [] as string[]]));
  for (const sender of SENDERS) expected[routingKeyFor(now, sender)]!.push(sender);
  expect(found).toEqual(expected);
}, 90_000);

it('declares no shard queue when Postgres cannot be reached, since the count cannot be read', async () => {
  const nowhere = createDatabase({ url: `postgres://postgres@127.0.0.1:${await freePort()}/nothing`, maxConnections: 1, connectTimeoutSeconds: 2, statementTimeoutMs: 5000, applicationName: 'test' });
  const elsewhere = topologyNames({ ...options, prefix: `${options.prefix}-outage` });
  const channel = await connection.createChannel();
  try {
    await declareShardTopology(nowhere, channel, elsewhere, `${options.prefix}-outage`, log);
    const found = [];
    for (const queue of [elsewhere.deadQueue, ...elsewhere.shards.map((shard) => shard.queue)]) if (await inspectQueue(connection, queue)) found.push(queue);
    expect(found).toEqual([elsewhere.deadQueue]);
  } finally {
    await channel.close().catch(() => undefined);
    await closeDatabase(nowhere);
    await deleteTopology(elsewhere);
  }
}, 30_000);

it('stops, the workers paused, when its lock\'s connection is ended before the move, and finishes when run again', async () => {
  const prefix = options.prefix;
  const before = await existing();
  const result = await runWagatePausedAt('reshard.before-move', ['reshard', '--to', '4'], env, async () => {
    // A Postgres restart or a proxy's reset ends the connection, and the lock with it.
    const ended = await db.sql`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted
                                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
    expect(ended).toHaveLength(1);
  });
  expect(result.stderr).toContain(`the reshard of "${prefix}" lost its lock in Postgres`);
  expect(result.stderr).toContain('stay paused');
  expect(result.code).not.toBe(0);
  expect(await existing()).toEqual(before);
  expect((await db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0]).toEqual({ shard_count: 2, paused: true });

  const again = await runWagatePausedAt('reshard.before-move', ['reshard', '--to', '4'], env, async () => undefined);
  expect(again.stdout).toContain('resharded from 2 to 4');
  expect(await existing()).toEqual(queues(4));
  expect((await db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0]).toEqual({ shard_count: 4, paused: false });
}, 90_000);

it('refuses a second run while a first whose Postgres lock was ended still moves, and the first then stops, the workers paused, for a rerun to finish', async () => {
  const prefix = options.prefix;
  const four = topologyNames(options);
  const two = topologyNames({ ...options, shards: 2 });
  expect((await db.sql`SELECT shard_count FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0]).toEqual({ shard_count: 4 });
  // Three numbered messages from each sender, one sender on each old shard.
  const channel = await connection.createConfirmChannel();
  for (let n = 1; n <= 3; n += 1) {
    for (const sender of SENDERS) {
      const body = { ...JSON.parse(message(sender).toString()), messageId: `wamid.${sender}.${n}` };
      channel.publish(four.exchange, routingKeyFor(four, sender!), Buffer.from(JSON.stringify(body)), { persistent: true, mandatory: true, messageId: `whatsapp:wamid.${sender}.${n}` });
    }
  }
  await channel.waitForConfirms();
  await channel.close();

  let second: { code: number | null; stdout: string; stderr: string } | null = null;
  const first = await runWagatePausedAt('reshard.distributing', ['reshard', '--to', '2'], env, async () => {
    // A quarter distributed: a failover or an administrator ends the first run's lock, unknown to it.
    const ended = await db.sql`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted
                                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
    expect(ended).toHaveLength(1);
    // On-call, told the workers are paused, runs the same command again.
    second = await runWagate(['reshard', '--to', '2'], { ...env, LOG_LEVEL: 'silent' });
  });
  expect(second!.code).not.toBe(0);
  expect(second!.stderr).toContain(`another wagate reshard of "${prefix}" is running: its connection to the broker holds the queue ${prefix}.reshard.claim`);
  // The first finds its lock gone and stops; whatever it had not moved waits for the rerun.
  expect(first.code).not.toBe(0);
  expect(first.stderr).toContain(`the reshard of "${prefix}" lost its lock in Postgres`);
  expect((await db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0]).toEqual({ shard_count: 4, paused: true });

  const rerun = await runWagate(['reshard', '--to', '2'], { ...env, LOG_LEVEL: 'silent' });
  expect([rerun.code, rerun.stdout]).toEqual([0, expect.stringContaining('resharded from 4 to 2')]);
  // Every message once, and each sender's in order.
  expect(await idsBySender(two)).toEqual(Object.fromEntries(SENDERS.map((sender) => [sender, [1, 2, 3].map((n) => `wamid.${sender}.${n}`)])));
}, 120_000);

it('stops while it distributes, every 100 messages, once its Postgres lock is ended, the rest left in staging for the rerun', async () => {
  const prefix = options.prefix;
  const two = topologyNames({ ...options, shards: 2 });
  const four = topologyNames(options);
  expect((await db.sql`SELECT shard_count FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0]).toEqual({ shard_count: 2 });
  const PER_SENDER = 60;
  const channel = await connection.createConfirmChannel();
  for (let n = 1; n <= PER_SENDER; n += 1) {
    for (const sender of SENDERS) {
      const body = { ...JSON.parse(message(sender).toString()), messageId: `wamid.${sender}.many.${n}` };
      channel.publish(two.exchange, routingKeyFor(two, sender!), Buffer.from(JSON.stringify(body)), { persistent: true, mandatory: true, messageId: `whatsapp:wamid.${sender}.many.${n}` });
    }
  }
  await channel.waitForConfirms();
  await channel.close();

  // A quarter distributed (60 of 240), the lock is ended; no other run comes, and nothing else would tell it.
  const first = await runWagatePausedAt('reshard.distributing', ['reshard', '--to', '4'], env, async () => {
    const ended = await db.sql`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted
                                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
    expect(ended).toHaveLength(1);
  });
  expect(first.code).not.toBe(0);
  expect(first.stderr).toContain(`the reshard of "${prefix}" lost its lock in Postgres`);
  // It stopped at its 100th message, not at the end of the move.
  expect((await inspectQueue(connection, `${prefix}.reshard`))?.messageCount).toBe(SENDERS.length * PER_SENDER - 100);
  expect((await db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0]).toEqual({ shard_count: 2, paused: true });

  const rerun = await runWagate(['reshard', '--to', '4'], { ...env, LOG_LEVEL: 'silent' });
  expect([rerun.code, rerun.stdout]).toEqual([0, expect.stringContaining('resharded from 2 to 4')]);
  expect(await idsBySender(four)).toEqual(Object.fromEntries(SENDERS.map((sender) => [sender, Array.from({ length: PER_SENDER }, (_, n) => `wamid.${sender}.many.${n + 1}`)])));
}, 120_000);
