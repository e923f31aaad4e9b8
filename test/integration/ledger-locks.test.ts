import { planBatch, rateLimitsJson } from '../../src/ledger/batch-plan';
import type { StatusItem } from '../../src/ledger/items';
import { RECORD_BATCH_SQL } from '../../src/ledger/record-batch-sql';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { queuedTextItem } from '../support/ledger-items';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

const message = (index: number) => queuedTextItem({ sender: `1555090${index % 50}` });

const LIMITS = JSON.stringify(rateLimitsJson({ whatsapp: { maxRequests: 100, windowSeconds: 3600 }, twilio: { maxRequests: 100, windowSeconds: 3600 } }));

describe('the batch write', () => {
  it('never joins a receipt to a message that shares its id in the same batch', async () => {
    const queued = message(1);
    const receipt: StatusItem = {
      kind: 'status',
      source: 'whatsapp',
      messageId: queued.messageId,
      receipt: 'delivered',
      recipient: '15550900001',
      timestampSeconds: Math.floor(Date.now() / 1000),
      payload: {},
    };
    const plan = planBatch([{ items: [queued, receipt], receivedAtMs: Date.now(), traceparent: '' }]);
    const rows = await db.sql.unsafe<{ ord: number; outcome: string }[]>(RECORD_BATCH_SQL, [JSON.stringify(plan.rows), LIMITS, 30]);
    expect(rows.map((row) => [row.ord, row.outcome]).sort()).toEqual([
      [0, 'queued'],
      [1, 'status'],
    ]);
    const outbox = await db.sql`SELECT 1 FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id WHERE m.message_id = ${queued.messageId}`;
    expect(outbox).toHaveLength(1);
  });

  it('holds a bounded number of lock-table entries however many messages a batch carries', async () => {
    // Postgres's lock table holds about max_locks_per_transaction x connections entries; a
    // batch must not need one per message (256 by default).
    const [setting] = await db.sql<{ max_locks: number }[]>`
      SELECT current_setting('max_locks_per_transaction')::integer AS max_locks`;
    const plan = planBatch([{ items: Array.from({ length: 256 }, (_, i) => message(i)), receivedAtMs: Date.now(), traceparent: '' }]);
    const connection = await db.sql.reserve();
    try {
      await connection`BEGIN`;
      const rows = await connection.unsafe(RECORD_BATCH_SQL, [JSON.stringify(plan.rows), LIMITS, 30]);
      expect(rows).toHaveLength(256);
      const [locks] = await connection<{ held: number; advisory: number }[]>`
        SELECT count(*)::integer AS held, count(*) FILTER (WHERE locktype = 'advisory')::integer AS advisory
        FROM pg_locks WHERE pid = pg_backend_pid()`;
      expect(locks!.advisory).toBe(0);
      expect(locks!.held).toBeLessThan(setting!.max_locks);
      await connection`COMMIT`;
    } finally {
      connection.release();
    }
  });
});
