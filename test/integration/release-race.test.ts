import { planBatch, rateLimitsJson } from '../../src/ledger/batch-plan';
import { RECORD_BATCH_SQL } from '../../src/ledger/record-batch-sql';
import { releaseSender } from '../../src/ledger/release';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { queuedTextItem } from '../support/ledger-items';
import { uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

/** One message a sender per hour: the second is rate_limited. */
const ONE_AN_HOUR = JSON.stringify(rateLimitsJson({ whatsapp: { maxRequests: 1, windowSeconds: 3600 }, twilio: { maxRequests: 1, windowSeconds: 3600 } }));
const batchOf = (sender: string, id: string) => JSON.stringify(planBatch([{ items: [queuedTextItem({ sender, id })], receivedAtMs: Date.now(), traceparent: '' }]).rows);

it('release also re-queues a message an ingest recorded rate_limited while it ran', async () => {
  const sender = '15550940001';
  const ids = [uniqueWamid(), uniqueWamid(), uniqueWamid()];
  for (const id of ids.slice(0, 2)) await db.sql.unsafe(RECORD_BATCH_SQL, [batchOf(sender, id), ONE_AN_HOUR, 30]);
  // An ingest's batch with the sender's third message, not yet committed: it holds the
  // sender's counter, which the release waits for.
  const ingest = await db.sql.reserve();
  try {
    await ingest`BEGIN`;
    const [recorded] = await ingest.unsafe<{ outcome: string }[]>(RECORD_BATCH_SQL, [batchOf(sender, ids[2]!), ONE_AN_HOUR, 30]);
    expect(recorded!.outcome).toBe('rate_limited');
    const release = releaseSender(db.sql, sender);
    await waitFor('the release waiting on the sender\'s counter', async () => {
      const waiting = await db.sql`SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%webhook_rate_limits%'`;
      return waiting.length > 0;
    });
    await ingest`COMMIT`;
    expect(await release).toMatchObject({ released: 2, withoutContent: 0 });
  } finally {
    ingest.release();
  }
  const rows = await db.sql<{ status: string; outbox: boolean }[]>`
    SELECT m.status, EXISTS (SELECT 1 FROM outbox o WHERE o.webhook_message_id = m.id) AS outbox
    FROM webhook_messages m WHERE m.message_id = ANY(${ids}) ORDER BY m.id`;
  expect(rows).toEqual([
    { status: 'queued', outbox: true },
    { status: 'queued', outbox: true },
    { status: 'queued', outbox: true },
  ]);
});
