import { resendReply } from '../../src/orders/reply-operations';
import type { ReplyClient } from '../../src/replies/reply-clients';
import { createMetrics } from '../../src/telemetry/metrics';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { runWagate } from '../support/process';

/**
 * `wagate replies unknown` prints each reply's last error. A provider's words may quote the
 * customer's number (a resend refused: "Message to +1 (555) 060-0099 failed"): Postgres keeps
 * them, where `wagate erase` reaches them, and the terminal gets them masked, as `dlq list` and
 * `replies undelivered` print theirs. wagate's own note of a resend the provider took is
 * printed whole: its reply and provider ids are what the operator settles it with.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

async function unknownReply(inbound: string, lastError: string): Promise<void> {
  await db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status, last_error)
    VALUES (${`reply:whatsapp:${inbound}`}, 'whatsapp', ${inbound}, '15550600099', '100', 'order_confirmation', 'Order #1', 'unknown', ${lastError})`;
}

it('masks a number the provider quoted, and prints whole the ids of wagate\'s note of a resend the provider took', async () => {
  await unknownReply('wamid.quoted', 'resend refused, nothing was sent: Message to +1 (555) 060-0099 failed (131047)');
  const note = 'an operator\'s resend was accepted by the provider as SM1234567890abcdef1234567890abcdef and could not be recorded: do not resend it; '
    + 'wagate replies settle --id 12345678 --as sent --provider-id SM1234567890abcdef1234567890abcdef';
  await unknownReply('wamid.noted', note);

  const listed = await runWagate(['replies', 'unknown'], testEnv(db.url));
  expect([listed.code, listed.stderr]).toEqual([0, '']);
  expect(listed.stdout).toContain('Message to <number> failed (131047)');
  expect(listed.stdout).not.toContain('060-0099');
  expect(listed.stdout).toContain(note);
  // Postgres keeps the provider's words.
  const [stored] = await db.sql`SELECT last_error FROM outbound_messages WHERE inbound_message_id = 'wamid.quoted'`;
  expect(stored!.last_error).toContain('+1 (555) 060-0099');
});

it('masks a number the provider quoted in the error of a resend whose reply a worker marked unknown meanwhile', async () => {
  await unknownReply('wamid.resent', 'no answer from the provider (TimeoutError)');
  const [reply] = await db.sql<{ id: string }[]>`SELECT id::text FROM outbound_messages WHERE inbound_message_id = 'wamid.resent'`;
  // The provider refuses, quoting the number; meanwhile a worker took the reply for abandoned.
  const refusing = (async () => {
    await db.sql`UPDATE outbound_messages SET status = 'unknown', sending_attempt = NULL WHERE id = ${reply!.id}`;
    return { kind: 'permanent', error: 'Twilio 400 code 21211: The \'To\' number +1 (555) 030-0002 is not a valid phone number' };
  }) as unknown as ReplyClient;
  const refused = await resendReply(db.sql, reply!.id, refusing, createMetrics('worker', { processMetrics: false })).then(() => null, (error: Error) => error);
  expect(refused?.message).toContain('The \'To\' number <number> is not a valid phone number');
  expect(refused?.message).not.toContain('030-0002');
});
