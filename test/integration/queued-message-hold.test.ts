import postgres from 'postgres';
import { createTestDatabase, holdInTransaction, holdQueuedMessages, type TestDatabase } from '../support/database';
import { waitFor } from '../support/wait';

/**
 * The tests' hold on queued message rows (holdQueuedMessages) must lock those rows and no
 * other: a row claimed while its statement ran, which READ COMMITTED locks without returning,
 * would keep that message's decision write, and with it a take of its shard, waiting.
 */
let db: TestDatabase;
let other: postgres.Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  other = postgres(db.url, { max: 2, onnotice: () => undefined });
});

afterAll(async () => {
  await other.end({ timeout: 1 });
  await db.drop();
});

beforeEach(async () => {
  await db.sql`DELETE FROM webhook_messages`;
  await db.sql`
    INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
    VALUES ('whatsapp', 'claimed', '15550001', 'k1', '15559999', 'queued', '{}'), ('whatsapp', 'waiting', '15550001', 'k1', '15559999', 'queued', '{}')`;
});

/** Whether another session can lock the row now, as a decision write of its message would. */
async function lockable(messageId: string): Promise<boolean> {
  return other.begin(async (tx) => {
    const rows = await tx`SELECT 1 FROM webhook_messages WHERE message_id = ${messageId} FOR UPDATE SKIP LOCKED`;
    return rows.length === 1;
  }) as Promise<boolean>;
}

/**
 * A claim of one message under way while the hold's statement starts: the hold waits for it,
 * and it commits once the hold's statement is waiting, so that the statement then finds the row
 * claimed. `hold` starts the hold; the claim's commit is what it waits on.
 */
async function claimDuring<T>(hold: () => T): Promise<T> {
  let commit!: () => void;
  const committed = new Promise<void>((resolve) => (commit = resolve));
  let changed!: () => void;
  const rowChanged = new Promise<void>((resolve) => (changed = resolve));
  const claim = other.begin(async (tx) => {
    await tx`UPDATE webhook_messages SET status = 'processing' WHERE message_id = 'claimed'`;
    changed();
    await committed;
  });
  await rowChanged;
  const started = hold();
  await waitFor('the hold to wait on the claim', async () =>
    (await db.sql`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).length > 0);
  commit();
  await claim;
  return started;
}

it('leaves a row claimed while it took its locks unlocked, and holds the queued ones', async () => {
  const hold = await claimDuring(() => holdQueuedMessages(db.sql, ['claimed', 'waiting']));
  try {
    expect(await lockable('claimed')).toBe(true);
    expect(await lockable('waiting')).toBe(false);
  } finally {
    await hold.release();
  }
});

it('is needed: one statement alone keeps the claimed row locked, though it returns only the queued one', async () => {
  let returned: string[] = [];
  const hold = await claimDuring(() => holdInTransaction(db.sql, async (tx) => {
    returned = (await tx<{ message_id: string }[]>`
      SELECT message_id FROM webhook_messages WHERE message_id IN ('claimed', 'waiting') AND status = 'queued' FOR UPDATE`).map((row) => row.message_id);
  }));
  try {
    await hold.held;
    expect(returned).toEqual(['waiting']);
    expect(await lockable('claimed')).toBe(false);
  } finally {
    await hold.release();
  }
});
