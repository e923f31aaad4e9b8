import amqp from 'amqplib';
import { assertTopology, topologyNames } from '../../src/queue/topology';
import { deleteTopology, TEST_AMQP_URL } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { randomQueuePrefix, testEnv } from '../support/ingest';
import { spawnWagate } from '../support/process';

let db: TestDatabase;
const prefix = randomQueuePrefix();
const existing = topologyNames({ prefix, deliveryLimit: 5, retryDelaysMs: [100, 200], shards: 2 });

beforeAll(async () => {
  db = await createTestDatabase();
  const connection = await amqp.connect(TEST_AMQP_URL);
  await assertTopology(await connection.createChannel(), existing);
  await connection.close();
});

afterAll(async () => {
  await deleteTopology(existing);
  await db.drop();
});

describe('a queue that exists with other arguments', () => {
  it.each(['ingest', 'worker'])('stops %s with exit 1 and a message that names the argument and how to migrate', async (command) => {
    const env = testEnv(db.url, {
      QUEUE_PREFIX: prefix,
      WORK_SHARDS: '2',
      RETRY_DELAYS_MS: '100,200',
      QUEUE_DELIVERY_LIMIT: '7',
      AMQP_URL: TEST_AMQP_URL,
      WHATSAPP_ACCESS_TOKEN: 'token',
    });
    const child = await spawnWagate(command, env);
    expect(await child.exited).toBe(1);
    const conflict = child.logs.find((entry) => entry.code === 'TOPOLOGY_CONFLICT');
    expect(conflict?.err).toMatch(/queue .*\.work\.0 .*inequivalent arg 'x-delivery-limit'/);
    expect(conflict?.err).toMatch(/To migrate/);
    // It gave up at once rather than reconnecting.
    expect(child.logs.filter((entry) => entry.msg === 'broker connect failed')).toHaveLength(0);
  });
});
