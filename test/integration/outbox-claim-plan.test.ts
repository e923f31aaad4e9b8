import type { Sql } from '../../src/db/client';
import { claimExpiredRows } from '../../src/ledger/outbox-claim';
import { createTestDatabase, explainingClient, type TestDatabase } from '../support/database';

/**
 * A sweep's claim reads the sender of each row it claims by the row's key, however long the
 * history of webhook_messages behind the outbox: written as a join, the planner chose to walk
 * webhook_messages in key order from its first row to meet the outbox's (330 ms a claim at
 * 500,000 rows), on every batch of a sweep draining a broker outage. Plans are read with
 * auto_explain, sent back as notices.
 */
/** Finished messages before the ones waiting in the outbox, so that walking them is dear. */
const HISTORY = 30_000;
const WAITING = 5000;
const SENDERS = 100;
const BATCH = 500;

let db: TestDatabase;
let explained: Sql;
const plans: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
    SELECT 'whatsapp', 'done.' || g, '1555' || g % ${SENDERS}, 'k' || g % ${SENDERS}, '100', 'processed', '{}'::jsonb
    FROM generate_series(1, ${HISTORY}) g`;
  await db.sql`
    WITH m AS (
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
      SELECT 'whatsapp', 'waiting.' || g, '1555' || g % ${SENDERS}, 'k' || g % ${SENDERS}, '100', 'queued', jsonb_build_object('n', g)
      FROM generate_series(1, ${WAITING}) g RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() - interval '1 second' FROM m`;
  // The first waiting row of sender k1 was refused by the broker: released with a backoff.
  await db.sql`
    UPDATE outbox SET attempts = 1, lease_until = now() + interval '30 seconds'
    WHERE webhook_message_id = (SELECT id FROM webhook_messages WHERE message_id = 'waiting.1')`;
  await db.sql`ANALYZE webhook_messages`;
  await db.sql`ANALYZE outbox`;
  explained = await explainingClient(db.url, plans, true);
});

afterAll(async () => {
  await explained?.end({ timeout: 1 });
  await db?.drop();
});

it('reads each claimed row\'s sender by its key, not by walking the history, and leaves out the refused sender\'s later rows', async () => {
  const claim = await claimExpiredRows(explained, 30, BATCH, { afterId: '0', heldSenders: [] });
  const claimed = claim.rows;
  expect(claimed).toHaveLength(BATCH);
  // The window's rows of k1 are reported held, for the sweep to keep k1 waiting.
  expect(claim.held.length).toBeGreaterThan(0);
  expect(new Set(claim.held.map((row) => row.sender))).toEqual(new Set(['k1']));
  const senders = await db.sql<{ message_id: string; sender_key: string }[]>`
    SELECT message_id, sender_key FROM webhook_messages WHERE id = ANY(${claimed.map((row) => row.id)}::bigint[])`;
  // Sender k1's rows after its refused one wait; the rest go in commit order.
  expect(senders.filter((row) => row.sender_key === 'k1')).toEqual([]);
  expect(senders).toHaveLength(BATCH);

  const plan = plans.join('\n');
  expect(plan).toMatch(/Index Scan using webhook_messages_pkey on webhook_messages cm/);
  // However long the history and the outbox, a claim reads the senders of the first rows due
  // only, four per row it may claim (2,000 here, a few more where a held-back row is checked
  // again), not those of every row waiting (5,000).
  const lookups = [...plan.matchAll(/on webhook_messages cm {2}\(cost=[^)]*\) \(actual time=[^)]* rows=\d+ loops=(\d+)\)/g)].map((match) => Number(match[1]));
  expect(lookups.length).toBeGreaterThan(0);
  expect(Math.max(...lookups)).toBeLessThan(WAITING / 2);
});
