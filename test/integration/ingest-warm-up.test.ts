import { createTestDatabase, type TestDatabase } from '../support/database';
import { openQueueProbe, type QueueProbe } from '../support/amqp';
import { startTestIngest, type TestIngest } from '../support/ingest';
import { postMetaText } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A new ingest reports ready only once its pool is open and the ledger's statement has run on
 * every connection the group commit uses: an autoscaled pod meets full traffic the moment
 * /readyz says ready. The rehearsal runs the whole path, ledger and publishes included, but its
 * batches are rolled back and the broker takes none of its messages: it leaves nothing behind.
 */
const POOL = 6;
const LEDGER_CONNECTIONS = POOL - 2;
/** Signed webhooks rehearsed through the request path before ready; none may leave a trace. */
const REHEARSAL = 500;

let db: TestDatabase;
let probe: QueueProbe;
let ingest: TestIngest | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
});

afterAll(async () => {
  if (ingest) {
    await ingest.stop();
    await probe.deleteTopology(ingest.topology);
  }
  await probe.close();
  await db.drop();
});

async function readiness(): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${ingest!.baseUrl}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** wagate_webhook_events_total over every label, from the ingest's own /metrics. */
async function webhookEventsCounted(): Promise<number> {
  const text = await (await fetch(ingest!.metricsUrl)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('wagate_webhook_events_total{'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

it('is not ready while it warms up, then ready with its ledger connections open and nothing recorded', async () => {
  // Holding the ledger table keeps the warm-up in progress for as long as the test needs to look.
  const holder = await db.sql.reserve();
  await holder`BEGIN`;
  await holder`LOCK TABLE webhook_messages IN ACCESS EXCLUSIVE MODE`;
  try {
    ingest = await startTestIngest(
      db.url,
      { DB_POOL_MAX: String(POOL), DB_STATEMENT_TIMEOUT_MS: '60000', WARM_UP_REHEARSAL_REQUESTS: String(REHEARSAL) },
      { awaitWarmUp: false },
    );
    await waitFor('the warm-up to wait on the held table', async () => (await db.sql`
      SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
      WHERE NOT l.granted AND a.application_name = 'wagate-ingest' AND a.datname = current_database()`).length > 0);
    expect(await readiness()).toEqual({ status: 503, body: { status: 'not ready', postgres: 'ok', broker: expect.any(String), draining: false, warmingUp: true } });
  } finally {
    await holder`ROLLBACK`;
    holder.release();
  }
  await ingest!.warmedUp;
  expect((await readiness()).status).toBe(200);
  expect((await readiness()).body).not.toHaveProperty('warmingUp');
  const [open] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'wagate-ingest' AND datname = current_database()`;
  expect(open!.n).toBeGreaterThanOrEqual(LEDGER_CONNECTIONS);
  const [left] = await db.sql<{ messages: number; outbox: number; limits: number; statuses: number }[]>`
    SELECT (SELECT count(*) FROM webhook_messages)::int AS messages, (SELECT count(*) FROM outbox)::int AS outbox,
           (SELECT count(*) FROM webhook_rate_limits)::int AS limits, (SELECT count(*) FROM message_statuses)::int AS statuses`;
  expect(left).toEqual({ messages: 0, outbox: 0, limits: 0, statuses: 0 });
  // Yet the rehearsal went through the ledger itself: a sequence is not rolled back.
  const [ids] = await db.sql<{ used: number }[]>`SELECT last_value::int AS used FROM webhook_messages_id_seq`;
  expect(ids!.used).toBeGreaterThanOrEqual(REHEARSAL);
  // The rehearsal's requests are not the shop's: no queue message, and not in the metrics.
  expect(await probe.drainWork(ingest!.topology)).toHaveLength(0);
  expect(await webhookEventsCounted()).toBe(0);
  expect((await postMetaText(ingest!.baseUrl, {})).status).toBe(200);
  expect(await webhookEventsCounted()).toBe(1);
});
