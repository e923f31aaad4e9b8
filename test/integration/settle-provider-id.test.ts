import type { StatusItem } from '../../src/ledger/items';
import type { LedgerRecorder } from '../../src/ledger/recorder';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config';
import { replyReference } from '../../src/ledger/fold-receipts';
import { runCleanup } from '../../src/ledger/retention';
import { deliverReply } from '../../src/orders/deliver-reply';
import type { OutboundRow } from '../../src/orders/record-decision';
import { resendReply, settleReply } from '../../src/orders/reply-operations';
import type { ReplyClient, SendOutcome } from '../../src/replies/reply-clients';
import { createMetrics } from '../../src/telemetry/metrics';
import { listUndeliveredReplies } from '../../src/orders/undelivered-replies';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { serialRecorder } from '../support/ledger-items';
import { testEnv } from '../support/ingest';
import { waitFor } from '../support/wait';
import { uniqueWamid } from '../support/webhooks';

/**
 * A reply whose send timed out never learnt the provider's message id, so the receipts Meta or
 * Twilio send for it reach no reply: one saying it failed left it out of `replies undelivered`
 * and of the alert for good. Settled as sent with the id the provider's console shows, it
 * takes the receipts stored under that id and those still to come.
 */
let db: TestDatabase;
let recorder: LedgerRecorder;
beforeAll(async () => {
  db = await createTestDatabase();
  recorder = serialRecorder(db.sql, 30_000);
});
afterAll(async () => db.drop());

async function unknownReply(source: 'whatsapp' | 'twilio' = 'whatsapp'): Promise<string> {
  const inbound = uniqueWamid();
  const [row] = await db.sql<{ id: string }[]>`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status, last_error)
    VALUES (${`reply:${source}:${inbound}`}, ${source}, ${inbound}, '15550700001', '106540352242922', 'order_confirmation', 'Order #1', 'unknown', 'timed out')
    RETURNING id::text`;
  return row!.id;
}

const receipt = (providerMessageId: string, status: string, payload: Record<string, unknown> = {}): StatusItem => ({
  kind: 'status', source: 'whatsapp', messageId: providerMessageId, receipt: status, recipient: '15550700001', timestampSeconds: Math.floor(Date.now() / 1000), payload,
});
const record = (item: StatusItem) => recorder.record({ items: [item], receivedAtMs: Date.now(), traceparent: '' });
const replyOf = async (id: string) =>
  (await db.sql<{ status: string; provider_message_id: string | null; delivery_status: string | null }[]>`
    SELECT status, provider_message_id, delivery_status FROM outbound_messages WHERE id = ${id}`)[0];

it('takes the receipts stored under the provider\'s id: a failed one lists the reply as undelivered, and a later read does not undo it', async () => {
  const id = await unknownReply();
  const wamid = `wamid.${uniqueWamid().replace(/\W/g, '')}`;
  await expect(record(receipt(wamid, 'failed', { errors: [{ code: 131026, title: 'Message undeliverable' }] }))).resolves.toEqual(['status']);
  expect(await settleReply(db.sql, id, 'sent', wamid)).toBe('failed');
  expect(await replyOf(id)).toEqual({ status: 'sent', provider_message_id: wamid, delivery_status: 'failed' });
  expect((await listUndeliveredReplies(db.sql, 24)).filter((reply) => reply.id === id)).toEqual([expect.objectContaining({ error_code: '131026' })]);
  await record(receipt(wamid, 'read'));
  expect((await replyOf(id))!.delivery_status).toBe('failed');
});

it('takes those still to come', async () => {
  const id = await unknownReply();
  const wamid = `wamid.${uniqueWamid().replace(/\W/g, '')}`;
  expect(await settleReply(db.sql, id, 'sent', wamid)).toBeNull();
  await record(receipt(wamid, 'delivered'));
  expect((await replyOf(id))!.delivery_status).toBe('delivered');
});

it('refuses an id another reply has, one of the other provider\'s form, and one with --as failed, changing nothing', async () => {
  const [holder, id] = [await unknownReply(), await unknownReply()];
  const wamid = `wamid.${uniqueWamid().replace(/\W/g, '')}`;
  await settleReply(db.sql, holder, 'sent', wamid);
  await expect(settleReply(db.sql, id, 'sent', wamid)).rejects.toThrow(`provider message id ${wamid} belongs to reply ${holder} already`);
  await expect(settleReply(db.sql, id, 'sent', `SM${'0'.repeat(32)}`)).rejects.toThrow(/went out through whatsapp, whose message ids are Meta's wamid/);
  await expect(settleReply(db.sql, id, 'failed', wamid)).rejects.toThrow(/goes with --as sent only/);
  expect(await replyOf(id)).toEqual({ status: 'unknown', provider_message_id: null, delivery_status: null });
  const twilio = await unknownReply('twilio');
  await expect(settleReply(db.sql, twilio, 'sent', wamid)).rejects.toThrow(/went out through twilio, whose message ids are Twilio's message SID/);
  expect(await settleReply(db.sql, twilio, 'sent', `SM${'a'.repeat(32)}`)).toBeNull();
});

it('gives an id to one of two replies settled with it at once, and refuses the other', async () => {
  const [first, second] = [await unknownReply(), await unknownReply()];
  const wamid = `wamid.${uniqueWamid().replace(/\W/g, '')}`;
  // Both replies are held, so that both settles are under way at once: each waits on its reply's
  // row, a check that ran before the other's commit would find the id free.
  const held = await db.sql.reserve();
  try {
    await held`BEGIN`;
    await held`SELECT 1 FROM outbound_messages WHERE id IN (${first}, ${second}) FOR UPDATE`;
    const settles = [settleReply(db.sql, first, 'sent', wamid), settleReply(db.sql, second, 'sent', wamid)].map((settle) =>
      settle.then(() => 'settled', (error: Error) => error.message));
    await waitFor('both settles to wait on a lock', async () => (await db.sql`
      SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).length === 2);
    await held`COMMIT`;
    const outcomes = await Promise.all(settles);
    expect(outcomes.filter((outcome) => outcome === 'settled')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome.includes(`provider message id ${wamid} belongs to reply`))).toHaveLength(1);
  } finally {
    held.release();
  }
  const owners = await db.sql`SELECT id FROM outbound_messages WHERE provider_message_id = ${wamid}`;
  expect(owners).toHaveLength(1);
});

describe('a receipt that names an unknown reply (biz_opaque_callback_data)', () => {
  /** An unknown reply left so by the attempt (its token) whose send's answer was lost. */
  async function unknownAttempt(): Promise<{ id: string; attempt: string }> {
    const id = await unknownReply();
    const attempt = randomUUID();
    await db.sql`UPDATE outbound_messages SET sending_attempt = ${attempt} WHERE id = ${id}`;
    return { id, attempt };
  }
  const named = (wamid: string, status: string, reply: { id: string; attempt: string }) =>
    receipt(wamid, status, { biz_opaque_callback_data: replyReference(reply.id, reply.attempt) });
  const newWamid = () => `wamid.${uniqueWamid().replace(/\W/g, '')}`;

  it('settles it as sent under the receipt\'s message id', async () => {
    const reply = await unknownAttempt();
    const wamid = newWamid();
    await record(named(wamid, 'failed', reply));
    expect(await replyOf(reply.id)).toEqual({ status: 'sent', provider_message_id: wamid, delivery_status: 'failed' });
  });

  /** A reply client that answers as given and keeps the reference each send carried. */
  const clientAnswering = (outcome: SendOutcome, references: string[]): ReplyClient => async (target) => {
    references.push(target.reference!);
    return outcome;
  };

  it('takes only the receipts of the attempt that left it unknown, not those of an attempt an operator resent it after', async () => {
    const reply = await unknownAttempt();
    const references: string[] = [];
    // Resent, and unknown again: the second attempt's receipts decide, not the first's.
    await expect(resendReply(db.sql, reply.id, clientAnswering({ kind: 'unknown', error: 'timed out' }, references), createMetrics('test'))).resolves.toBe('unknown');
    expect(references).toHaveLength(1);
    expect(references[0]).not.toBe(replyReference(reply.id, reply.attempt));
    const first = newWamid();
    await record(named(first, 'failed', reply));
    expect(await replyOf(reply.id)).toEqual({ status: 'unknown', provider_message_id: null, delivery_status: null });
    const second = newWamid();
    await record(receipt(second, 'delivered', { biz_opaque_callback_data: references[0] }));
    expect(await replyOf(reply.id)).toEqual({ status: 'sent', provider_message_id: second, delivery_status: 'delivered' });
  });

  it('keeps the attempt it was left unknown by when a resend of it is refused, so that attempt\'s receipts still settle it', async () => {
    const reply = await unknownAttempt();
    await expect(resendReply(db.sql, reply.id, clientAnswering({ kind: 'retry', error: 'Graph API 429 code 130429' }, []), createMetrics('test')))
      .rejects.toThrow(/resend failed, nothing was sent/);
    const wamid = newWamid();
    await record(named(wamid, 'delivered', reply));
    expect(await replyOf(reply.id)).toEqual({ status: 'sent', provider_message_id: wamid, delivery_status: 'delivered' });
  });

  it('leaves an erased customer\'s reply unknown, and keeps neither the number nor the payload of the receipt naming it', async () => {
    const erased = await unknownAttempt();
    await db.sql`UPDATE outbound_messages SET recipient = 'erased' WHERE id = ${erased.id}`;
    const wamid = newWamid();
    await record(named(wamid, 'delivered', erased));
    expect(await replyOf(erased.id)).toEqual({ status: 'unknown', provider_message_id: null, delivery_status: null });
    expect(await db.sql`SELECT recipient, payload FROM message_statuses WHERE message_id = ${wamid}`).toEqual([{ recipient: null, payload: null }]);
  });

  it('leaves a reply sent already, and one whose message id another reply holds', async () => {
    const [sent, holder, other] = [await unknownAttempt(), await unknownAttempt(), await unknownAttempt()];
    const sentAs = newWamid();
    await settleReply(db.sql, sent.id, 'sent', sentAs);
    const held = newWamid();
    await settleReply(db.sql, holder.id, 'sent', held);

    await record(named(newWamid(), 'delivered', sent));
    await record(named(held, 'delivered', other));
    expect(await replyOf(sent.id)).toEqual({ status: 'sent', provider_message_id: sentAs, delivery_status: null });
    expect(await replyOf(other.id)).toEqual({ status: 'unknown', provider_message_id: null, delivery_status: null });
    // The holder's own receipt reaches it as before.
    expect(await replyOf(holder.id)).toEqual({ status: 'sent', provider_message_id: held, delivery_status: 'delivered' });
  });

  /** A reply the provider took, whose worker died before it recorded so: still 'sending', its receipt already stored. */
  async function takenWhileSending(status: string): Promise<{ id: string; attempt: string; wamid: string }> {
    const reply = await unknownAttempt();
    await db.sql`UPDATE outbound_messages SET status = 'sending' WHERE id = ${reply.id}`;
    const wamid = newWamid();
    await record(named(wamid, status, reply));
    expect((await replyOf(reply.id))!.status).toBe('sending');
    return { ...reply, wamid };
  }

  it('settles an orphaned send as sent at once when a receipt naming its attempt came while it was sending', async () => {
    const reply = await takenWhileSending('delivered');
    const [row] = await db.sql<OutboundRow[]>`
      SELECT id::text, kind, status, recipient, business_number, body, order_id::text, attempts FROM outbound_messages WHERE id = ${reply.id}`;
    const references: string[] = [];
    // The message's next attempt finds the reply in a dead attempt's hands: no call, and no wait for the nightly repair.
    await expect(deliverReply(db.sql, 'whatsapp', row!, clientAnswering({ kind: 'sent', providerMessageId: newWamid() }, references), createMetrics('test'))).resolves.toBe('sent');
    expect(references).toEqual([]);
    expect(await replyOf(reply.id)).toEqual({ status: 'sent', provider_message_id: reply.wamid, delivery_status: 'delivered' });
  });

  it('refuses to resend an unknown reply whose receipt came while it was sending, and settles it sent: resent, the customer had it twice', async () => {
    const reply = await takenWhileSending('read');
    // Marked unknown by a path that folds nothing: a dead-lettered message's orphaned reply.
    await db.sql`UPDATE outbound_messages SET status = 'unknown' WHERE id = ${reply.id}`;
    const references: string[] = [];
    await expect(resendReply(db.sql, reply.id, clientAnswering({ kind: 'sent', providerMessageId: newWamid() }, references), createMetrics('test')))
      .rejects.toThrow(`reply ${reply.id} was sent and its furthest receipt says read`);
    expect(references).toEqual([]);
    expect(await replyOf(reply.id)).toEqual({ status: 'sent', provider_message_id: reply.wamid, delivery_status: 'read' });
  });

  it('is found by cleanup\'s receipt repair when it was stored before the reply became unknown', async () => {
    const reply = await unknownAttempt();
    await db.sql`UPDATE outbound_messages SET status = 'sending' WHERE id = ${reply.id}`;
    const wamid = newWamid();
    await record(named(wamid, 'sent', reply));
    await db.sql`UPDATE outbound_messages SET status = 'unknown' WHERE id = ${reply.id}`;
    expect((await replyOf(reply.id))!.status).toBe('unknown');
    await runCleanup(db.sql, loadConfig(testEnv(db.url)), { days: 9, personalDataDays: 7, orderDays: 365 });
    expect(await replyOf(reply.id)).toEqual({ status: 'sent', provider_message_id: wamid, delivery_status: 'sent' });
  });
});
