import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import postgres from 'postgres';
import { loadConfig } from '../src/config';
import { createDatabase, type Sql } from '../src/db/client';
import { migrate } from '../src/db/migrate';
import { topologyFromConfig } from '../src/queue/depths';
import type { Topology } from '../src/queue/topology';

/** A database and a queue prefix of the bench's own, so it never touches anyone else's data. */
export interface BenchEnvironment {
  runId: string;
  databaseName: string;
  databaseUrl: string;
  amqpUrl: string;
  queuePrefix: string;
  appSecret: string;
  /** The names the ingest declares, derived from the same config code it runs. */
  topology: Topology;
  sql: Sql;
  destroy(): Promise<void>;
}

/** TEST_DATABASE_URL and TEST_AMQP_URL, when set, name the servers, as they do for the tests. */
function testServers(): Record<string, string> {
  const servers: Record<string, string> = {};
  if (process.env.TEST_DATABASE_URL) servers.DATABASE_URL = process.env.TEST_DATABASE_URL;
  if (process.env.TEST_AMQP_URL) servers.AMQP_URL = process.env.TEST_AMQP_URL;
  return servers;
}

/**
 * Reads DATABASE_URL, AMQP_URL (or TEST_DATABASE_URL, TEST_AMQP_URL) and the queue settings exactly as wagate does (same
 * variables, same defaults), so the bench and the ingest it starts agree on every name.
 * The database named in DATABASE_URL is only used to create and drop the bench's own.
 */
export async function createBenchEnvironment(): Promise<BenchEnvironment> {
  const runId = randomBytes(5).toString('hex');
  const queuePrefix = `wagate-bench-${runId}`;
  const config = loadConfig({ ...process.env, ...testServers(), QUEUE_PREFIX: queuePrefix });
  const name = `wagate_bench_${runId}`;
  const admin = postgres(config.DATABASE_URL, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  const databaseUrl = withDatabase(config.DATABASE_URL, name);
  const sql = createDatabase({
    url: databaseUrl,
    maxConnections: 2,
    connectTimeoutSeconds: 5,
    // The checks read every acknowledged id at once; give them room.
    statementTimeoutMs: 60_000,
    applicationName: 'wagate-bench',
  });
  await migrate(sql);
  const topology = topologyFromConfig(config);
  return {
    runId,
    databaseName: name,
    databaseUrl,
    amqpUrl: config.AMQP_URL,
    queuePrefix,
    appSecret: `bench-secret-${runId}`,
    topology,
    sql,
    async destroy() {
      await sql.end({ timeout: 1 });
      const cleanup = postgres(config.DATABASE_URL, { max: 1, onnotice: () => undefined });
      await cleanup.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
      await deleteTopology(config.AMQP_URL, topology);
    },
  };
}

/** Ready messages across the work queues (passive declare, so nothing is created); null if one is missing. */
export function countWorkMessages(amqpUrl: string, topology: Topology): Promise<number | null> {
  return countReadyMessages(amqpUrl, topology.shards.map((shard) => shard.queue));
}

/** Ready messages in the dead-letter queue and every retry tier; null if one is missing. */
export function countSetAsideMessages(amqpUrl: string, topology: Topology): Promise<number | null> {
  return countReadyMessages(amqpUrl, [topology.deadQueue, ...topology.retryTiers.map((tier) => tier.queue)]);
}

async function countReadyMessages(amqpUrl: string, queues: string[]): Promise<number | null> {
  const connection = await amqp.connect(amqpUrl);
  // A missing queue closes the channel with a 404; that is an answer here, not a crash.
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    let total = 0;
    for (const queue of queues) total += (await channel.checkQueue(queue)).messageCount;
    return total;
  } catch {
    return null;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

async function deleteTopology(amqpUrl: string, topology: Topology): Promise<void> {
  const queues = [...topology.shards.map((shard) => shard.queue), topology.deadQueue, ...topology.retryTiers.map((tier) => tier.queue)];
  const exchanges = [topology.exchange, topology.deadExchange, ...topology.retryTiers.map((tier) => tier.exchange)];
  const connection = await amqp.connect(amqpUrl);
  try {
    // Deleting something absent is not an error in RabbitMQ, so one channel serves them all.
    const channel = await connection.createChannel();
    for (const queue of queues) await channel.deleteQueue(queue);
    for (const exchange of exchanges) await channel.deleteExchange(exchange);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
