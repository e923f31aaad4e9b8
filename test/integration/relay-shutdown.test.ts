import { openQueueProbe, type QueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startTestIngest, type TestIngest } from '../support/ingest';
import { waitFor } from '../support/wait';

/**
 * A SIGTERM that meets a large outbox backlog (the broker came back after an outage) must not
 * wait for the sweep to publish all of it: the pod would outlive its grace period and be killed
 * mid-publish. It stops after the batch under way and leaves the rest in the outbox.
 */
const BACKLOG = 30_000;
/** The relay's rows per sweep claim (its default). */
const SWEEP_BATCH = 500;

let db: TestDatabase;
let probe: QueueProbe;
let ingest: TestIngest | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
});

afterAll(async () => {
  await ingest?.stop();
  if (ingest) await probe.deleteTopology(ingest.topology);
  await probe.close();
  await db.drop();
});

/** Queued messages whose outbox leases expired long ago, as a broker outage leaves them. */
async function fillBacklog(count: number): Promise<void> {
  await db.sql`
    WITH messages AS (
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, message_type, status, payload)
      SELECT 'whatsapp', 'wamid.backlog.' || g, '1555' || (g % 500), '1555' || (g % 500), '106540352242922', 'text', 'queued',
             jsonb_build_object('v', 1, 'source', 'whatsapp', 'messageId', 'wamid.backlog.' || g, 'from', '1555' || (g % 500),
               'senderKey', '1555' || (g % 500), 'business', '106540352242922', 'contactName', NULL, 'type', 'text',
               'timestampSeconds', NULL, 'receivedAt', '2026-12-01T10:00:00.000Z', 'content', jsonb_build_object('text', jsonb_build_object('body', '2 pizzas')))
      FROM generate_series(1, ${count}) AS g
      RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() - interval '1 hour' FROM messages`;
}

async function outboxRows(): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM outbox`;
  return row!.n;
}

it('stops after the sweep batch under way, and leaves the rest of the backlog in the outbox', async () => {
  await fillBacklog(BACKLOG);
  ingest = await startTestIngest(db.url, { OUTBOX_POLL_MS: '50' });
  await waitFor('the sweep to start on the backlog', async () => (await outboxRows()) < BACKLOG, 30_000);

  const beforeStop = await outboxRows();
  await ingest.stop();
  const running = ingest;
  ingest = undefined;
  const left = await outboxRows();
  let queued = 0;
  for (const shard of running.topology.shards) queued += await probe.readyCount(shard.queue);
  await probe.deleteTopology(running.topology);

  expect(left).toBeGreaterThan(0);
  // At most the batch under way, and rows of the batch before whose deletes were still gathering.
  expect(beforeStop - left).toBeLessThanOrEqual(3 * SWEEP_BATCH);
  // Nothing lost: every message is either in its queue or still in the outbox.
  expect(queued + left).toBeGreaterThanOrEqual(BACKLOG);
}, 120_000);
