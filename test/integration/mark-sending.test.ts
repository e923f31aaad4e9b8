import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import type { Sql } from '../../src/db/client';
import { markSending } from '../../src/orders/mark-sending';
import { createTestDatabase, type TestDatabase } from '../support/database';

/**
 * The mark before a provider call moves a reply that is definitely not sent: 'pending' or
 * 'retry', or 'sending' under the token of an attempt whose mark went unanswered and which so
 * called nothing. A reply 'sending' under any other attempt may have been sent.
 */
let db: TestDatabase;
let sequence = 0;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

async function reply(status: string, sendingAttempt: string | null = null, attempts = 0): Promise<string> {
  sequence += 1;
  const [row] = await db.sql<{ id: string }[]>`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status, sending_attempt, attempts)
    VALUES (${`reply:mark:${sequence}`}, 'whatsapp', ${`wamid.mark.${sequence}`}, '15550800001', '100', 'order_confirmation', 'Order', ${status}, ${sendingAttempt}, ${attempts})
    RETURNING id::text`;
  return row!.id;
}

const stateOf = async (id: string) =>
  (await db.sql<{ status: string; attempts: number; sending_attempt: string | null }[]>`
    SELECT status, attempts, sending_attempt FROM outbound_messages WHERE id = ${id}`)[0]!;

it('marks a pending or retry reply, counting one attempt and writing this attempt\'s token', async () => {
  const pending = await reply('pending');
  const retry = await reply('retry', randomUUID(), 1);
  const [first, second] = [randomUUID(), randomUUID()];
  expect(await markSending(db.sql, [
    { replyId: pending, attempt: first, unsentAttempts: [] },
    { replyId: retry, attempt: second, unsentAttempts: [] },
  ])).toEqual([true, true]);
  expect(await stateOf(pending)).toEqual({ status: 'sending', attempts: 1, sending_attempt: first });
  expect(await stateOf(retry)).toEqual({ status: 'sending', attempts: 2, sending_attempt: second });
});

it('takes over a reply still sending under a carried token, counting its mark', async () => {
  const unanswered = randomUUID();
  const id = await reply('sending', unanswered, 1);
  const attempt = randomUUID();
  expect(await markSending(db.sql, [{ replyId: id, attempt, unsentAttempts: [randomUUID(), unanswered] }])).toEqual([true]);
  expect(await stateOf(id)).toEqual({ status: 'sending', attempts: 2, sending_attempt: attempt });
  // The token taken over is spent: carried once more, it no longer matches.
  expect(await markSending(db.sql, [{ replyId: id, attempt: randomUUID(), unsentAttempts: [unanswered] }])).toEqual([false]);
  expect((await stateOf(id)).sending_attempt).toBe(attempt);
});

it('answers true again to the same attempt, whose mark committed once already', async () => {
  const id = await reply('pending');
  const attempt = randomUUID();
  expect(await markSending(db.sql, [{ replyId: id, attempt, unsentAttempts: [] }])).toEqual([true]);
  expect(await markSending(db.sql, [{ replyId: id, attempt, unsentAttempts: [] }])).toEqual([true]);
  expect(await stateOf(id)).toEqual({ status: 'sending', attempts: 1, sending_attempt: attempt });
});

it('leaves a reply sending under another attempt, or under none, as it is', async () => {
  const other = await reply('sending', randomUUID(), 1);
  const noToken = await reply('sending', null, 1);
  const carried = [randomUUID()];
  expect(await markSending(db.sql, [
    { replyId: other, attempt: randomUUID(), unsentAttempts: carried },
    { replyId: noToken, attempt: randomUUID(), unsentAttempts: carried },
  ])).toEqual([false, false]);
  expect((await stateOf(other)).attempts).toBe(1);
  expect((await stateOf(noToken)).sending_attempt).toBeNull();
});

it('matches a carried token only to the reply of its own mark', async () => {
  const [tokenA, tokenB] = [randomUUID(), randomUUID()];
  const a = await reply('sending', tokenA, 1);
  const b = await reply('sending', tokenB, 1);
  // Each mark carries the other reply's token: neither may take its own reply over.
  expect(await markSending(db.sql, [
    { replyId: a, attempt: randomUUID(), unsentAttempts: [tokenB] },
    { replyId: b, attempt: randomUUID(), unsentAttempts: [tokenA] },
  ])).toEqual([false, false]);
  expect(await markSending(db.sql, [
    { replyId: a, attempt: randomUUID(), unsentAttempts: [tokenA] },
    { replyId: b, attempt: randomUUID(), unsentAttempts: [tokenB] },
  ])).toEqual([true, true]);
});

it('reaches each reply through its primary key in a large table, in custom and generic plans', async () => {
  await db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status)
    SELECT 'reply:bulk:' || g, 'whatsapp', 'wamid.bulk.' || g, '1555' || g, '100', 'order_confirmation', repeat('x', 200), 'sent'
    FROM generate_series(1, 30000) g`;
  await db.sql`ANALYZE outbound_messages`;
  const plans: string[] = [];
  const explained = postgres(db.url, {
    max: 1,
    onnotice: (notice) => {
      if (String(notice.message).includes('plan:')) plans.push(String(notice.message));
    },
  }) as unknown as Sql;
  try {
    await explained`LOAD 'auto_explain'`;
    await explained`SET auto_explain.log_min_duration = 0`;
    await explained`SET auto_explain.log_level = 'notice'`;
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      await explained.unsafe(`SET plan_cache_mode = ${mode}`);
      const ids = await Promise.all(Array.from({ length: 32 }, () => reply('pending')));
      plans.length = 0;
      const marked = await markSending(explained, ids.map((replyId) => ({ replyId, attempt: randomUUID(), unsentAttempts: [randomUUID()] })));
      expect(marked.every(Boolean)).toBe(true);
      const plan = plans.join('\n');
      expect(plan).toContain('outbound_messages_pkey');
      expect(plan).not.toMatch(/Seq Scan on outbound_messages/);
    }
  } finally {
    await explained.end({ timeout: 1 });
  }
});
