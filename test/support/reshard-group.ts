import amqp from 'amqplib';
import { topologyNames, type TopologyOptions } from '../../src/queue/topology';
import { deleteTopology, openQueueProbe, TEST_AMQP_URL, type QueueProbe } from './amqp';
import { createTestDatabase, type TestDatabase } from './database';
import { testEnv } from './ingest';

/** A queue group of four shards for a reshard test file: its database, a broker connection, a probe, the command's env. */
export interface ReshardGroup {
  db: TestDatabase;
  connection: amqp.ChannelModel;
  probe: QueueProbe;
  env: Record<string, string>;
  options: TopologyOptions;
  /** Deletes the group's queues (of four shards), and closes and drops the rest. */
  close(): Promise<void>;
}

export async function startReshardGroup(): Promise<ReshardGroup> {
  const db = await createTestDatabase();
  const env = testEnv(db.url, { WORK_SHARDS: '4', RETRY_DELAYS_MS: '1000', QUEUE_DELIVERY_LIMIT: '5' });
  const options: TopologyOptions = { prefix: env.QUEUE_PREFIX!, deliveryLimit: 5, retryDelaysMs: [1000], shards: 4 };
  const connection = await amqp.connect(TEST_AMQP_URL);
  const probe = await openQueueProbe();
  return {
    db, connection, probe, env, options,
    async close() {
      await deleteTopology(topologyNames(options));
      await probe.close();
      await connection.close();
      await db.drop();
    },
  };
}
