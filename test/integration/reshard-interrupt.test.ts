import { spawn } from 'node:child_process';
import { ensureShardCount } from '../../src/ledger/shard-count';
import { topologyNames } from '../../src/queue/topology';
import { deleteTopology } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { MAIN_JS } from '../support/process';
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

afterAll(async () => {
  await deleteTopology(topologyNames({ prefix: env.QUEUE_PREFIX!, deliveryLimit: 5, retryDelaysMs: [1000], shards: 2 }));
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
