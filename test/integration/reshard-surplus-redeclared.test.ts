import amqp from 'amqplib';
import { removeRedeclaredSurplus } from '../../src/ledger/shard-topology';
import { ensureShardCount } from '../../src/ledger/shard-count';
import { inspectQueue } from '../../src/queue/inspect-queue';
import { assertTopology, routingKeyFor, shardOf, topologyNames, type TopologyOptions } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { bodyOf, deleteTopology, openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, holdInTransaction, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { runWagatePausedAt } from '../support/process';

/**
 * A shrinking reshard deletes the surplus shard queues, but a process still on the old count
 * that read the count just before the reshard stored the new one can declare them again on
 * connecting. An old-count ingest's publishes would then wait there for a worker that never
 * comes. Whichever of the two looks last removes them, and forwards what reached them to the
 * sender's shard of the new count: the reshard, which checks the broker again once it has
 * stored its count, or the process, which reads the count again once it has declared.
 */
let db: TestDatabase;
let connection: amqp.ChannelModel;
let probe: QueueProbe;
let env: Record<string, string>;
let options: TopologyOptions;
const lines: Record<string, unknown>[] = [];
const log = createLogger('info', 'test', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });

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

/** Senders whose shard of four is one that a shrink to two makes surplus, and one whose shard stays. */
function sendersOnShards(count: number, wanted: number[]): string[] {
  return wanted.map((shard) => {
    for (let n = 0; ; n += 1) if (shardOf(`1555000${n}`, count) === shard) return `1555000${n}`;
  });
}

function message(sender: string, seq: number): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, source: 'whatsapp', messageId: `wamid.${sender}.${seq}`, from: sender, senderKey: sender, business: '1', contactName: null, type: 'text', timestampSeconds: null, receivedAt: '2026-12-01T10:00:00.000Z', content: {}, seq }));
}

/** What a process on four shards does on connecting after the shrink, and what an old-count ingest then publishes. */
async function declareOldCountAndPublish(senders: string[]): Promise<void> {
  const old = topologyNames(options);
  const channel = await connection.createConfirmChannel();
  await assertTopology(channel, old);
  for (const sender of senders) channel.publish(old.exchange, routingKeyFor(old, sender), message(sender, 1), { persistent: true, mandatory: true });
  await channel.waitForConfirms();
  await channel.close();
}

async function existing(count: number): Promise<string[]> {
  const found: string[] = [];
  for (const shard of topologyNames({ ...options, shards: count }).shards) if (await inspectQueue(connection, shard.queue)) found.push(shard.queue);
  return found;
}

/** Every message ready on the shards of `count`, by the shard it sits on. */
async function onShards(count: number): Promise<Record<string, string[]>> {
  const topology = topologyNames({ ...options, shards: count });
  const found: Record<string, string[]> = {};
  for (const shard of topology.shards) {
    const senders = (await probe.drain(shard.queue)).map((delivered) => String(bodyOf(delivered).senderKey));
    if (senders.length > 0) found[shard.routingKey] = senders;
  }
  return found;
}

it('has the reshard remove a surplus queue declared again after its move, and put what reached it on the new shards', async () => {
  const old = topologyNames(options);
  const channel = await connection.createConfirmChannel();
  await assertTopology(channel, old);
  await channel.close();
  await ensureShardCount(db.sql, options.prefix, 4);
  const [onSurplus, onKept] = sendersOnShards(4, [3, 1]) as [string, string];

  const result = await runWagatePausedAt('reshard.after-store', ['reshard', '--to', '2'], env, async () => {
    // The move deleted the surplus queues; a process that read four shards declares them again.
    expect(await existing(4)).toEqual(old.shards.slice(0, 2).map((shard) => shard.queue));
    await declareOldCountAndPublish([onSurplus, onKept]);
    expect(await existing(4)).toEqual(old.shards.map((shard) => shard.queue));
  });
  expect(result.stderr).toContain(`removed 2 surplus shard queue(s) that a process on the old count had declared again (${old.shards[2]!.queue}, ${old.shards[3]!.queue}), and put their 1 message(s) on their senders' shards`);
  expect(result.stdout).toContain('resharded from 4 to 2');
  expect(result.code).toBe(0);

  expect(await existing(4)).toEqual(old.shards.slice(0, 2).map((shard) => shard.queue));
  const now = topologyNames({ ...options, shards: 2 });
  const expected: Record<string, string[]> = {};
  // The kept shard's message was there first; the surplus one's was forwarded after it.
  for (const sender of [onKept, onSurplus]) (expected[routingKeyFor(now, sender)] ??= []).push(sender);
  expect(await onShards(2)).toEqual(expected);
}, 90_000);

it('has a process that declared more shard queues than are stored remove the surplus, but never beside a reshard', async () => {
  const old = topologyNames(options);
  const [onSurplus] = sendersOnShards(4, [2]) as [string];
  await declareOldCountAndPublish([onSurplus]);
  expect(await existing(4)).toEqual(old.shards.map((shard) => shard.queue));

  // A reshard runs: the process leaves the queues alone, and its connection is tried again.
  const reshardRunning = holdInTransaction(db.sql, (tx) => tx`SELECT pg_advisory_xact_lock(hashtext(${`wagate-reshard:${options.prefix}`}))`);
  await reshardRunning.held;
  try {
    await expect(removeRedeclaredSurplus(db.sql, connection, old, options.prefix, 4, log))
      .rejects.toThrow(`a reshard of "${options.prefix}" is running and made shard queues this process declared surplus; connecting again once it has finished`);
    expect(await existing(4)).toEqual(old.shards.map((shard) => shard.queue));
  } finally {
    await reshardRunning.release();
  }

  await removeRedeclaredSurplus(db.sql, connection, old, options.prefix, 4, log);
  expect(await existing(4)).toEqual(old.shards.slice(0, 2).map((shard) => shard.queue));
  expect(await onShards(2)).toEqual({ [routingKeyFor(topologyNames({ ...options, shards: 2 }), onSurplus)]: [onSurplus] });
  expect(lines).toContainEqual(expect.objectContaining({ queues: [old.shards[2]!.queue, old.shards[3]!.queue], moved: 1 }));
}, 60_000);
