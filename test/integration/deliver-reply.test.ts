import { randomUUID } from 'node:crypto';
import { acceptedUnrecordedOf, deliverReply } from '../../src/orders/deliver-reply';
import { ERASED, NOT_SENT_ERASED } from '../../src/orders/erasure';
import type { SendingMark } from '../../src/orders/mark-sending';
import { markAbandonedSends, SEND_ABANDONED } from '../../src/orders/reply-operations';
import type { OutboundRow } from '../../src/orders/record-decision';
import type { ReplyClient, SendOutcome } from '../../src/replies/reply-clients';
import { createMetrics } from '../../src/telemetry/metrics';
import { replyReference } from '../../src/ledger/fold-receipts';
import { PermanentError, RetryableError } from '../../src/errors';
import { createTestDatabase, type TestDatabase } from '../support/database';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

async function pendingReply(inbound: string): Promise<OutboundRow> {
  const [row] = await db.sql<OutboundRow[]>`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body)
    VALUES (${`reply:whatsapp:${inbound}`}, 'whatsapp', ${inbound}, '15550700001', '106540352242922', 'order_confirmation', 'Order #1')
    RETURNING id::text, kind, status, recipient, business_number, body, order_id::text, attempts`;
  return row!;
}

const statusOf = async (id: string) => (await db.sql`SELECT status FROM outbound_messages WHERE id = ${id}`)[0]!.status;

/**
 * The provider answers while another worker, which took the sender's shard over during the
 * call, has found the send in flight and marked it unknown.
 */
function answeringAfterTakeover(outcome: SendOutcome, id: () => string): ReplyClient {
  return async () => {
    await db.sql`UPDATE outbound_messages SET status = 'unknown' WHERE id = ${id()} AND status = 'sending'`;
    return outcome;
  };
}

describe('a reply settled after another worker took over', () => {
  it('stays unknown, in front of an operator, when the late answer is a failure', async () => {
    const reply = await pendingReply('wamid.takeover-503');
    const send = answeringAfterTakeover({ kind: 'retry', error: 'Graph API 503' }, () => reply.id);
    await expect(deliverReply(db.sql, 'whatsapp', reply, send, createMetrics('test'))).rejects.toBeInstanceOf(RetryableError);
    // Not 'retry': no queue message would ever pick it up again.
    expect(await statusOf(reply.id)).toBe('unknown');
  });

  it('becomes sent when the late answer is a success', async () => {
    const reply = await pendingReply('wamid.takeover-200');
    const send = answeringAfterTakeover({ kind: 'sent', providerMessageId: 'wamid.provider-1' }, () => reply.id);
    expect(await deliverReply(db.sql, 'whatsapp', reply, send, createMetrics('test'))).toBe('sent');
    expect(await statusOf(reply.id)).toBe('sent');
  });
});

describe('a reply another attempt was sending', () => {
  it('does not finish the message when that attempt has put the reply back to be retried', async () => {
    const inbound = 'wamid.race-retry';
    await db.sql`
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, status)
      VALUES ('whatsapp', ${inbound}, '15550700001', '15550700001', 'processing')`;
    const reply = await pendingReply(inbound);
    let sends = 0;
    const send: ReplyClient = async () => {
      sends += 1;
      return { kind: 'sent', providerMessageId: 'wamid.provider-race' };
    };
    // This attempt loses the mark to the other one, which meanwhile hears 429 and settles 'retry'.
    const markSending = async ({ replyId: id }: SendingMark) => {
      await db.sql`UPDATE outbound_messages SET status = 'retry' WHERE id = ${id}`;
      return false;
    };
    const finishing = { finish: { messageId: inbound, outcome: 'processed' as const }, markSending };
    await expect(deliverReply(db.sql, 'whatsapp', reply, send, createMetrics('test'), finishing)).rejects.toBeInstanceOf(RetryableError);
    expect(sends).toBe(0);
    expect(await statusOf(reply.id)).toBe('retry');
    const [message] = await db.sql`SELECT status FROM webhook_messages WHERE message_id = ${inbound}`;
    expect(message!.status).toBe('processing');
  });
});

describe('a refusal written after another attempt marked the reply', () => {
  it('leaves that attempt\'s mark as it is', async () => {
    const reply = await pendingReply('wamid.refusal-after-other-mark');
    const other = randomUUID();
    // During the call another attempt holds the reply (as after this one's write of the refusal
    // committed with its answer lost and the reply was marked again before its retry).
    const send: ReplyClient = async () => {
      await db.sql`UPDATE outbound_messages SET sending_attempt = ${other} WHERE id = ${reply.id}`;
      return { kind: 'retry', error: 'Graph API 503' };
    };
    await expect(deliverReply(db.sql, 'whatsapp', reply, send, createMetrics('test'))).rejects.toBeInstanceOf(RetryableError);
    const [row] = await db.sql`SELECT status, sending_attempt FROM outbound_messages WHERE id = ${reply.id}`;
    expect(row).toEqual({ status: 'sending', sending_attempt: other });
  });
});

describe('a reply left sending by an attempt whose mark went unanswered', () => {
  it('fails, never sent and not unknown, when its customer was erased meanwhile', async () => {
    const inbound = 'wamid.unsent-erased';
    const reply = await pendingReply(inbound);
    const unanswered = randomUUID();
    await db.sql`UPDATE outbound_messages SET status = 'sending', sending_attempt = ${unanswered}, recipient = ${ERASED}, body = NULL WHERE id = ${reply.id}`;
    let sends = 0;
    const send: ReplyClient = async () => {
      sends += 1;
      return { kind: 'sent', providerMessageId: 'wamid.never' };
    };
    expect(await deliverReply(db.sql, 'whatsapp', { ...reply, status: 'sending' }, send, createMetrics('test'), { unsentAttempts: [unanswered] })).toBe('already_settled');
    expect(sends).toBe(0);
    const [row] = await db.sql`SELECT status, last_error, sending_attempt FROM outbound_messages WHERE id = ${reply.id}`;
    expect(row).toEqual({ status: 'failed', last_error: NOT_SENT_ERASED, sending_attempt: null });
  });

  it('stays unknown when the carried token is not the one it is sending under', async () => {
    const inbound = 'wamid.unsent-other';
    const reply = await pendingReply(inbound);
    await db.sql`UPDATE outbound_messages SET status = 'sending', sending_attempt = ${randomUUID()} WHERE id = ${reply.id}`;
    let sends = 0;
    const send: ReplyClient = async () => {
      sends += 1;
      return { kind: 'sent', providerMessageId: 'wamid.never' };
    };
    expect(await deliverReply(db.sql, 'whatsapp', { ...reply, status: 'sending' }, send, createMetrics('test'), { unsentAttempts: [randomUUID()] })).toBe('unknown');
    expect(sends).toBe(0);
    expect(await statusOf(reply.id)).toBe('unknown');
  });
});

describe('the write of the provider answer', () => {
  /** Fails the next `times` writes of a reply's outcome with a deadlock, as a passing lock cycle would. */
  async function failOutcomeWrites(times: number): Promise<() => Promise<number>> {
    await db.sql.unsafe(`
      DROP TRIGGER IF EXISTS fail_outcome_writes ON outbound_messages;
      DROP SEQUENCE IF EXISTS fail_outcome_writes_seq;
      CREATE SEQUENCE fail_outcome_writes_seq;
      CREATE OR REPLACE FUNCTION fail_outcome_writes() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        -- nextval is not rolled back with the failed statement, so it counts every try.
        IF nextval('fail_outcome_writes_seq') <= ${times} THEN
          RAISE EXCEPTION 'injected deadlock' USING ERRCODE = '40P01';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_outcome_writes BEFORE UPDATE ON outbound_messages FOR EACH ROW
        WHEN (OLD.status = 'sending' AND NEW.status <> 'sending') EXECUTE FUNCTION fail_outcome_writes();`);
    return async () => (await db.sql<{ tries: number }[]>`SELECT last_value::integer AS tries FROM fail_outcome_writes_seq`)[0]!.tries;
  }

  afterEach(async () => {
    await db.sql.unsafe(`DROP TRIGGER IF EXISTS fail_outcome_writes ON outbound_messages; DROP SEQUENCE IF EXISTS fail_outcome_writes_seq`);
  });

  it('is tried again when the database refuses it for a passing reason, so a sent reply keeps its provider id', async () => {
    const reply = await pendingReply('wamid.settle-deadlock');
    const tries = await failOutcomeWrites(2);
    const send: ReplyClient = async () => ({ kind: 'sent', providerMessageId: 'wamid.provider-after-deadlock' });
    expect(await deliverReply(db.sql, 'whatsapp', reply, send, createMetrics('test'))).toBe('sent');
    expect(await tries()).toBe(3);
    const [row] = await db.sql`SELECT status, provider_message_id FROM outbound_messages WHERE id = ${reply.id}`;
    expect(row).toEqual({ status: 'sent', provider_message_id: 'wamid.provider-after-deadlock' });
  });

  it('names the provider\'s id when a sent reply cannot be recorded, keeping the error as it came', async () => {
    const reply = await pendingReply('wamid.settle-unwritten');
    await failOutcomeWrites(100);
    const send: ReplyClient = async () => ({ kind: 'sent', providerMessageId: 'wamid.provider-unrecorded' });
    await expect(deliverReply(db.sql, 'whatsapp', reply, send, createMetrics('test'))).rejects.toMatchObject({
      code: '40P01',
      message: expect.stringContaining('injected deadlock'),
      acceptedUnrecorded: { replyId: reply.id, providerMessageId: 'wamid.provider-unrecorded' },
    });
    const [row] = await db.sql`SELECT status FROM outbound_messages WHERE id = ${reply.id}`;
    expect(row).toEqual({ status: 'sending' });
  });

  it('names each reply of a shared statement that failed them all with one error', async () => {
    // A micro-batch of settles rejects every item with the same error object.
    const shared = Object.assign(new Error('the shared statement failed'), { code: 'XX000' });
    const replies = [await pendingReply('wamid.shared-a'), await pendingReply('wamid.shared-b')];
    const failures = await Promise.all(replies.map((reply, index) => {
      const send: ReplyClient = async () => ({ kind: 'sent', providerMessageId: `wamid.provider-shared-${index}` });
      return deliverReply(db.sql, 'whatsapp', reply, send, createMetrics('test'), { settle: () => Promise.reject(shared) }).then(() => null, (error: unknown) => error);
    }));
    expect(failures.map((error) => acceptedUnrecordedOf(error))).toEqual([
      { replyId: replies[0]!.id, providerMessageId: 'wamid.provider-shared-0' },
      { replyId: replies[1]!.id, providerMessageId: 'wamid.provider-shared-1' },
    ]);
    expect(failures.map((error) => [error instanceof Error, (error as Error).message, (error as { code?: string }).code]))
      .toEqual([[true, 'the shared statement failed', 'XX000'], [true, 'the shared statement failed', 'XX000']]);
    expect(acceptedUnrecordedOf(shared)).toBeUndefined();
  });

  it('keeps a refusal and its reason through a passing failure of the write', async () => {
    const reply = await pendingReply('wamid.refusal-deadlock');
    await failOutcomeWrites(1);
    const send: ReplyClient = async () => ({ kind: 'permanent', error: 'Graph API 400 code 131047' });
    await expect(deliverReply(db.sql, 'whatsapp', reply, send, createMetrics('test'))).rejects.toBeInstanceOf(PermanentError);
    const [row] = await db.sql`SELECT status, last_error FROM outbound_messages WHERE id = ${reply.id}`;
    expect(row).toEqual({ status: 'failed', last_error: 'Graph API 400 code 131047' });
  });

  it('hands a refusal it could not write to the next attempt, which asks the provider again instead of taking the reply for unknown', async () => {
    const reply = await pendingReply('wamid.refusal-unwritten');
    await failOutcomeWrites(100);
    const answers: SendOutcome[] = [{ kind: 'retry', error: 'Graph API 429 code 130429', retryAfterMs: 30_000 }, { kind: 'sent', providerMessageId: 'wamid.provider-second-try' }];
    const send: ReplyClient = async () => answers.shift()!;
    const carried: string[] = [];
    const first = deliverReply(db.sql, 'whatsapp', reply, send, createMetrics('test'), { onMarkUnanswered: (token) => carried.push(token) });
    // Retried as the provider said, its Retry-After kept.
    await expect(first).rejects.toBeInstanceOf(RetryableError);
    await expect(first).rejects.toMatchObject({ retryAfterMs: 30_000, message: expect.stringContaining('the refusal could not be recorded (injected deadlock)') });
    expect(carried).toHaveLength(1);
    expect(await statusOf(reply.id)).toBe('sending');

    await db.sql.unsafe('DROP TRIGGER fail_outcome_writes ON outbound_messages');
    expect(await deliverReply(db.sql, 'whatsapp', { ...reply, status: 'sending' }, send, createMetrics('test'), { unsentAttempts: carried })).toBe('sent');
    expect(answers).toEqual([]);
    const [row] = await db.sql`SELECT status, provider_message_id FROM outbound_messages WHERE id = ${reply.id}`;
    expect(row).toEqual({ status: 'sent', provider_message_id: 'wamid.provider-second-try' });
  });
});

describe('the workers\' look for replies left in between', () => {
  /** A reply in `status`, last touched `ageSeconds` ago, of a message in `messageStatus` (none: cleaned up). */
  async function replyLeft(status: string, ageSeconds: number, messageStatus: string | null, recipient = '15550700002'): Promise<string> {
    const inbound = `wamid.left.${status}.${messageStatus}.${ageSeconds}.${recipient}`;
    if (messageStatus) {
      await db.sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status)
                   VALUES ('whatsapp', ${inbound}, ${recipient}, ${recipient}, '106540352242922', ${messageStatus})`;
    }
    const [row] = await db.sql<{ id: string }[]>`
      INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status, updated_at)
      VALUES (${`reply:whatsapp:${inbound}`}, 'whatsapp', ${inbound}, ${recipient}, '106540352242922', 'order_confirmation', 'Order #1', ${status},
              now() - make_interval(secs => ${ageSeconds}))
      RETURNING id::text`;
    return row!.id;
  }

  it('marks unknown a reply left sending or retry with its message finished, fails an erased customer\'s, and leaves the rest', async () => {
    const killedResend = await replyLeft('sending', 60, 'processed');
    const resendPutBackFailed = await replyLeft('retry', 60, 'dead');
    const cleanedUp = await replyLeft('sending', 60, null);
    const erasedRetry = await replyLeft('retry', 60, 'erased', ERASED);
    const inTier = await replyLeft('retry', 60, 'queued');
    const inCall = await replyLeft('sending', 60, 'processing');
    const recent = await replyLeft('sending', 1, 'processed');
    expect(await markAbandonedSends(db.sql, 30_000)).toBe(3);
    const rows = await db.sql<{ id: string; status: string; last_error: string | null }[]>`
      SELECT id::text, status, last_error FROM outbound_messages WHERE id = ANY(${[killedResend, resendPutBackFailed, cleanedUp, erasedRetry, inTier, inCall, recent]}::bigint[])`;
    const byId = Object.fromEntries(rows.map((row) => [row.id, [row.status, row.last_error]]));
    expect([killedResend, resendPutBackFailed, cleanedUp].map((id) => byId[id])).toEqual(Array(3).fill(['unknown', SEND_ABANDONED]));
    expect(byId[erasedRetry]).toEqual(['failed', NOT_SENT_ERASED]);
    expect([inTier, inCall, recent].map((id) => byId[id]![0])).toEqual(['retry', 'sending', 'sending']);
  });

  it('settles as sent, not unknown, a reply left sending whose receipt, naming its attempt, came meanwhile', async () => {
    const id = await replyLeft('sending', 60, 'processed', '15550700003');
    const attempt = randomUUID();
    await db.sql`UPDATE outbound_messages SET sending_attempt = ${attempt} WHERE id = ${id}`;
    const wamid = `wamid.abandoned${randomUUID().replace(/-/g, '')}`;
    await db.sql`INSERT INTO message_statuses (webhook_source, message_id, status, recipient, payload)
                 VALUES ('whatsapp', ${wamid}, 'delivered', '15550700003', ${db.sql.json({ biz_opaque_callback_data: replyReference(id, attempt) })})`;
    expect(await markAbandonedSends(db.sql, 30_000)).toBe(0);
    expect(await db.sql`SELECT status, provider_message_id, delivery_status FROM outbound_messages WHERE id = ${id}`)
      .toEqual([{ status: 'sent', provider_message_id: wamid, delivery_status: 'delivered' }]);
  });
});
