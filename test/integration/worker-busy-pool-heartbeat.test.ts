import { counterValue } from '../support/in-process';
import { holdInTransaction } from '../support/database';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A worker's heartbeat goes through while every connection of its pool waits on Postgres:
 * queued behind them, it came late, the lease ran out again and again, and each time the
 * messages in hand went back to the queue, one delivery nearer QUEUE_DELIVERY_LIMIT.
 */
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline();
});

afterAll(async () => {
  await pipeline.stop();
});

const statusOf = async (id: string) => (await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

/** The longest a statement of the worker's pool has waited on a lock, in seconds. */
async function longestLockWaitSeconds(): Promise<number> {
  const [row] = await pipeline.db.sql<{ seconds: number | null }[]>`
    SELECT max(extract(epoch FROM now() - query_start))::float8 AS seconds FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'wagate-worker' AND wait_event_type = 'Lock'`;
  return row!.seconds ?? 0;
}

it('keeps its lease, and the messages in hand, while every pooled statement waits on a lock for longer than the lease', async () => {
  // The smallest pool, and statements that wait on the lock for as long as it is held.
  const worker = await pipeline.startWorker({ DB_POOL_MAX: '2', DB_STATEMENT_TIMEOUT_MS: '120000' });
  await waitFor('the worker to hold every shard', () => worker.coordinator.owned().length === 4);
  const livenessSeconds = Number(pipeline.env.WORKER_LIVENESS_TIMEOUT_MS) / 1000;
  // Every decision write waits on the orders table.
  const orders = holdInTransaction(pipeline.db.sql, (tx) => tx`LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE`);
  await orders.held;
  const ids: string[] = [];
  try {
    const first = uniqueWamid();
    ids.push(first);
    await postMetaText(pipeline.ingest.baseUrl, { id: first, from: '15550930000', text: '1 coke' });
    await waitFor('the first decision write waiting on the lock', async () => (await longestLockWaitSeconds()) > 0, 30_000);
    // Enough decisions behind it for a second write statement beside the first, on the pool's
    // other connection, as far as the pool has one.
    for (let n = 1; n <= 40; n += 1) {
      const id = uniqueWamid();
      ids.push(id);
      await postMetaText(pipeline.ingest.baseUrl, { id, from: `1555093${String(n).padStart(4, '0')}`, text: '1 coke' });
    }
    await waitFor('a statement of the pool waiting three leases long', async () => (await longestLockWaitSeconds()) > 3 * livenessSeconds, 60_000);
    expect(worker.coordinator.lease().leftMs).toBeGreaterThan(0);
    expect(await counterValue(worker.metrics, 'wagate_worker_messages_total', { outcome: 'given_back' })).toBe(0);
  } finally {
    await orders.release();
  }
  await waitFor('every message processed once the lock goes', async () => (await Promise.all(ids.map(statusOf))).every((status) => status === 'processed'), 60_000);
  expect(await counterValue(worker.metrics, 'wagate_worker_messages_total', { outcome: 'given_back' })).toBe(0);
}, 180_000);
