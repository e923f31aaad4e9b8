import { deliverReply } from '../../src/orders/deliver-reply';
import type { OutboundRow } from '../../src/orders/record-decision';
import type { ReplyClient, SendOutcome } from '../../src/replies/reply-clients';
import { createMetrics } from '../../src/telemetry/metrics';
import { RetryableError } from '../../src/errors';
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
    const markSending = async (id: string) => {
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
