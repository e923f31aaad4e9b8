import { spawn } from 'node:child_process';
import amqp from 'amqplib';
import postgres from 'postgres';
import { metaEnvelope } from '../../src/webhooks/samples';
import { withDeadLetterLock } from '../../src/ledger/dead-letter-lock';
import { checkRetention, runCleanup } from '../../src/ledger/retention';
import { reopenDeadMessage } from '../../src/orders/reopen-dead-message';
import { resendReply, settleReply } from '../../src/orders/reply-operations';
import { eraseCustomer } from '../../src/orders/erase-customer';
import { createMetrics } from '../../src/telemetry/metrics';
import { loadConfig } from '../../src/config';
import { createDatabase, INGEST_APPLICATION_NAME, type Sql } from '../../src/db/client';
import { TEST_AMQP_URL } from '../support/amqp';
import { holdInTransaction } from '../support/database';
import { eraseEverywhere, listDead, operator, replayDead } from '../support/dead-letters';
import { dropDeadLetters } from '../../src/queue/dead-letters';
import { withOperatorChannel } from '../../src/queue/operator-channel';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { postMeta, postMetaText, uniqueWamid } from '../support/webhooks';
import { MAIN_JS, runWagate } from '../support/process';
import { waitFor } from '../support/wait';

let pipeline: Pipeline;

beforeAll(async () => {
  // A statement timeout long enough that the ingest statement the erase race holds on purpose
  // outlasts a loaded machine's pauses.
  pipeline = await startPipeline({ DB_STATEMENT_TIMEOUT_MS: '30000' });
  await pipeline.startWorker();
});

afterAll(async () => {
  await pipeline.stop();
});

const skippedCount = async () =>
  (await Promise.all(pipeline.workers.map(async (worker) => (await worker.metrics.workerMessages.get()).values)))
    .flat()
    .filter((v) => v.labels.outcome === 'skipped')
    .reduce((sum, v) => sum + v.value, 0);

const statusOf = async (id: string) => (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

/** A connection of the test's own beside the pipeline's, for holding locks and watching sessions. */
const sideConnection = (applicationName: string, maxConnections: number) =>
  createDatabase({ url: pipeline.db.url, maxConnections, connectTimeoutSeconds: 5, statementTimeoutMs: 60_000, applicationName });

/** A sender Meta names by number and user id orders, and the order is processed: the message's id. */
async function orderedBy(phone: string, userId: string): Promise<string> {
  const id = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, userId, text: '1 coke' });
  await waitFor('the order', async () => (await statusOf(id)) === 'processed');
  return id;
}

/**
 * What `wagate erase --phone customer` printed before it was stopped while it waited for the
 * dead-letter queue, which another reader (a long dlq list, say) holds: its database part done.
 */
async function eraseStoppedAtTheQueue(customer: string): Promise<string> {
  let release!: () => void;
  let holding!: () => void;
  const held = new Promise<void>((resolve) => (holding = resolve));
  const reader = withDeadLetterLock(pipeline.db.sql, pipeline.env.QUEUE_PREFIX!, () => {
    holding();
    return new Promise<void>((resolve) => (release = resolve));
  });
  await held;
  try {
    const erasing = spawn(process.execPath, [MAIN_JS, 'erase', '--phone', customer], { env: { PATH: process.env.PATH ?? '', ...pipeline.env, LOG_LEVEL: 'silent' } });
    let stdout = '';
    erasing.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => erasing.once('exit', (code) => resolve(code)));
    try {
      await waitFor('the erase to wait for the queue', () => stdout.includes('now dropping the customer\'s dead letters'), 30_000);
      erasing.kill('SIGTERM');
      expect(await exited).toBe(143);
    } finally {
      erasing.kill('SIGKILL');
    }
    return stdout;
  } finally {
    release();
    await reader;
  }
}

describe('erase', () => {
  it('removes a customer’s personal data from messages, orders, replies and the dead-letter queue', async () => {
    const phone = '15550400001';
    const ordered = uniqueWamid();
    const dead = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: ordered, from: phone, text: '1 coke' });
    await waitFor('the order', async () => (await statusOf(ordered)) === 'processed');
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id: dead, from: phone, text: '2 coke' });
    await waitFor('the dead letter', async () => (await statusOf(dead)) === 'dead');
    await waitFor('the copy in the DLQ', async () =>
      (await listDead(pipeline.ingest.topology)).some((l) => l.id === `whatsapp:${dead}`),
    );

    // As a cart's note would have left it.
    await pipeline.db.sql`UPDATE orders SET note = 'ring twice, Calle Mayor 3' WHERE message_id = ${ordered}`;
    const report = await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, `+${phone}`);
    // The dead message had created its order before its confirmation failed.
    expect(report).toMatchObject({ messages: 2, orders: 2, replies: 2, dead_letters: 1 });
    const messages = await pipeline.db.sql`SELECT phone_number, payload FROM webhook_messages WHERE message_id IN (${ordered}, ${dead})`;
    expect(messages).toEqual([
      { phone_number: 'erased', payload: null },
      { phone_number: 'erased', payload: null },
    ]);
    const [order] = await pipeline.db.sql`SELECT phone_number, customer_name, note, total::text FROM orders WHERE message_id = ${ordered}`;
    expect(order).toEqual({ phone_number: 'erased', customer_name: null, note: null, total: '2.50' });
    const replies = await pipeline.db.sql`SELECT recipient, body, last_error FROM outbound_messages WHERE inbound_message_id IN (${ordered}, ${dead})`;
    expect(replies.every((r) => r.recipient === 'erased' && r.body === null && r.last_error === null)).toBe(true);
    // A provider's error text may quote the number: it goes too.
    expect(await pipeline.db.sql`SELECT last_error FROM webhook_messages WHERE message_id = ${dead}`).toEqual([{ last_error: null }]);
    // Its dead letter, replayed from a copy the erase missed, does not reopen it.
    expect(await reopenDeadMessage(pipeline.db.sql, { source: 'whatsapp', messageId: dead }, [], async () => true)).toBe('skipped');
    expect(await statusOf(dead)).toBe('dead');
    expect((await listDead(pipeline.ingest.topology)).map((l) => l.id)).not.toContain(`whatsapp:${dead}`);
    // Dedupe keys survive erasure: a replay is still a duplicate.
    await postMetaText(pipeline.ingest.baseUrl, { id: ordered, from: phone, text: '1 coke' });
    expect((await pipeline.db.sql`SELECT duplicate_count FROM webhook_messages WHERE message_id = ${ordered}`)[0]!.duplicate_count).toBe(1);
  });
});

describe('erase beside another reader of the dead-letter queue', () => {
  it('waits for a `dlq list` under way, which holds the letters it took, and then drops the customer\'s', async () => {
    const phone = '15550400031';
    const dead = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id: dead, from: phone, text: '2 coke' });
    await waitFor('the copy in the DLQ', async () => (await listDead(pipeline.ingest.topology)).some((l) => l.id === `whatsapp:${dead}`));

    // What `wagate dlq list` holds while it reads: the group's lock, and every letter taken so far.
    const reader = holdInTransaction(pipeline.db.sql, (tx) => tx`SELECT pg_advisory_xact_lock(hashtext(${`wagate-dlq:${pipeline.env.QUEUE_PREFIX!}`}))`);
    await reader.held;
    const connection = await amqp.connect(TEST_AMQP_URL);
    const channel = await connection.createChannel();
    const taken: amqp.GetMessage[] = [];
    for (let letter = await channel.get(pipeline.ingest.topology.deadQueue); letter; letter = await channel.get(pipeline.ingest.topology.deadQueue)) taken.push(letter);
    expect(taken.map((letter) => letter.properties.messageId)).toContain(`whatsapp:${dead}`);

    const erasing = runWagate(['erase', '--phone', `+${phone}`], { ...pipeline.env, LOG_LEVEL: 'silent' });
    await waitFor('the erase to wait for the reader', async () => (await pipeline.db.sql`
      SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).length > 0);
    channel.nackAll(true);
    await connection.close();
    await reader.release();

    const erased = await erasing;
    expect([erased.code, erased.stderr]).toEqual([0, '']);
    expect(erased.stdout).toMatch(/^dead_letters\t1$/m);
    expect((await listDead(pipeline.ingest.topology)).map((l) => l.id)).not.toContain(`whatsapp:${dead}`);
  }, 60_000);
});

describe('erase from the command line', () => {
  it('finds the customer however the operator writes the number, and says so when nothing is held', async () => {
    const phone = '15550400021';
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
    await waitFor('the order', async () => (await statusOf(id)) === 'processed');
    const env = { ...pipeline.env, LOG_LEVEL: 'silent' };
    const erased = await runWagate(['erase', '--phone', ' WhatsApp:+1 (555) 040-0021 '], env);
    expect([erased.code, erased.stderr]).toEqual([0, '']);
    expect(erased.stdout).toMatch(/^messages\t1$/m);
    expect(erased.stdout).toMatch(/^orders\t1$/m);
    expect(await pipeline.db.sql`SELECT phone_number, payload FROM webhook_messages WHERE message_id = ${id}`).toEqual([{ phone_number: 'erased', payload: null }]);
    const again = await runWagate(['erase', '--phone', '0015550400021'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing held for +15550400021: erased already, or check the number');
  });

  it('reports the erasure in the database and exits 1 naming the broker when the dead letters cannot be read', async () => {
    const phone = '15550400022';
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
    await waitFor('the order', async () => (await statusOf(id)) === 'processed');
    // Port 9 refuses: no broker answers.
    const erased = await runWagate(['erase', '--phone', `+${phone}`], { ...pipeline.env, LOG_LEVEL: 'silent', AMQP_URL: 'amqp://guest:guest@127.0.0.1:9' });
    expect(erased.code).toBe(1);
    expect(erased.stdout).toMatch(/^messages\t1$/m);
    expect(erased.stdout).toMatch(/^dead_letters\tnot read$/m);
    expect(erased.stderr).toContain('the customer\'s data in the database is erased (above), but the dead-letter queue could not be read');
    expect(erased.stderr).toContain(`once that is mended, run wagate erase --phone for each of +${phone} to drop their dead letters`);
    expect(await pipeline.db.sql`SELECT phone_number FROM webhook_messages WHERE message_id = ${id}`).toEqual([{ phone_number: 'erased' }]);
  }, 60_000);

  it('run by a role that cannot see the ingest\'s statements, exits 1 saying to run again now, and the second run needs no such view', async () => {
    const phone = '15550400023';
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
    await waitFor('the confirmation sent', async () =>
      (await pipeline.db.sql`SELECT status FROM outbound_messages WHERE inbound_message_id = ${id}`)[0]?.status === 'sent');
    // The ingest connects as another role: without pg_read_all_stats this one sees its
    // sessions in pg_stat_activity, but not what they run.
    const role = `wagate_eraser_${Math.random().toString(36).slice(2, 10)}`;
    const password = Math.random().toString(36).slice(2);
    await pipeline.db.sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    try {
      await pipeline.db.sql.unsafe(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role}; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
      const asRole = new URL(pipeline.env.DATABASE_URL!);
      asRole.username = role;
      asRole.password = password;
      const env = { ...pipeline.env, LOG_LEVEL: 'silent', DATABASE_URL: asRole.toString() };
      const erased = await runWagate(['erase', '--phone', `+${phone}`], env);
      expect(erased.code).toBe(1);
      expect(erased.stdout).toMatch(/^replies\t1$/m);
      expect(erased.stdout).toMatch(/^late_receipts\tnot read$/m);
      expect(erased.stdout).toMatch(/^late_messages\tnot read$/m);
      expect(erased.stderr).toContain('the customer is erased (above), but messages and receipts the ingest wrote while the erase ran could not be checked (what the ingest\'s sessions run cannot be seen');
      expect(erased.stderr).toContain(`run wagate erase --phone for each of +${phone} again, which clears them`);
      expect(await pipeline.db.sql`SELECT phone_number FROM webhook_messages WHERE message_id = ${id}`).toEqual([{ phone_number: 'erased' }]);
      const again = await runWagate(['erase', '--phone', `+${phone}`], env);
      expect([again.code, again.stderr]).toEqual([0, '']);
    } finally {
      await pipeline.db.sql.unsafe(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  }, 60_000);
});

describe('an erase stopped while it waits for the dead-letter queue', () => {
  it('has already said which ids to erase again, the user ids its database part found among them', async () => {
    const phone = '15550400023';
    const userId = 'US.66554433221100998877';
    const id = await orderedBy(phone, userId);
    const stdout = await eraseStoppedAtTheQueue(`+${phone}`);
    expect(stdout).toContain(`run wagate erase --phone for each of +${phone}, ${userId}`);
    expect(await pipeline.db.sql`SELECT phone_number FROM webhook_messages WHERE message_id = ${id}`).toEqual([{ phone_number: 'erased' }]);
  }, 60_000);
});

describe('erase of a customer whose Meta user id changed', () => {
  it('given the new id, reaches the rate-limit and language rows of the old one, which carry no number', async () => {
    const phone = '15550400031';
    const [oldId, newId] = ['US.11223344556677889900', 'US.11223344556677889911'];
    for (const userId of [oldId, newId]) {
      const id = uniqueWamid();
      await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, userId, text: 'hola, una coca por favor' });
      await waitFor('the order', async () => (await statusOf(id)) === 'processed');
    }
    const keyed = async (table: 'webhook_rate_limits' | 'customer_languages') => (table === 'webhook_rate_limits'
      ? await pipeline.db.sql`SELECT phone_number AS key FROM webhook_rate_limits WHERE phone_number IN ${pipeline.db.sql([oldId, newId])} ORDER BY 1`
      : await pipeline.db.sql`SELECT sender_key AS key FROM customer_languages WHERE sender_key IN ${pipeline.db.sql([oldId, newId])} ORDER BY 1`).map((row) => row.key);
    expect([await keyed('webhook_rate_limits'), await keyed('customer_languages')]).toEqual([[oldId, newId], [oldId, newId]]);
    const report = await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, newId);
    expect(report).toMatchObject({ messages: 2, orders: 2, rate_limits: 2, reply_languages: 2 });
    expect([await keyed('webhook_rate_limits'), await keyed('customer_languages')]).toEqual([[], []]);
  });

  it('does not go on from a recycled number\'s earlier owner to their new number: that is another customer', async () => {
    const recycled = '15550400035';
    const [earlierOwner, newOwner] = ['US.11223344556677889935', 'US.11223344556677889936'];
    const earlierOwnersNewNumber = '15550400036';
    const ids = { before: uniqueWamid(), moved: uniqueWamid(), now: uniqueWamid() };
    for (const [id, from, userId] of [[ids.before, recycled, earlierOwner], [ids.moved, earlierOwnersNewNumber, earlierOwner], [ids.now, recycled, newOwner]] as const) {
      await postMetaText(pipeline.ingest.baseUrl, { id, from, userId, text: '1 coke' });
      await waitFor('the order', async () => (await statusOf(id)) === 'processed');
    }
    await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, `+${recycled}`);
    // The earlier owner's reply to their new number is theirs: kept. (Their messages and orders
    // keyed on their user id, which wrote from the recycled number too, are reached still.)
    expect(await pipeline.db.sql`SELECT recipient FROM outbound_messages WHERE inbound_message_id = ${ids.moved}`).toEqual([{ recipient: earlierOwnersNewNumber }]);
    expect(await pipeline.db.sql`SELECT recipient FROM outbound_messages WHERE inbound_message_id = ${ids.now}`).toEqual([{ recipient: 'erased' }]);
  });

  it('given a user id, names the number found through it among the ids to erase again', async () => {
    const phone = '15550400033';
    const userId = 'US.11223344556677889933';
    await orderedBy(phone, userId);
    // A dead letter keyed on the number (a message from before Meta sent user ids) is found by the number alone once the rows are erased.
    expect(await eraseStoppedAtTheQueue(userId)).toContain(`run wagate erase --phone for each of ${userId}, +${phone})`);
  }, 60_000);
});

describe('erase by phone number of a sender keyed on Meta\'s user id', () => {
  it('also removes the rate-limit row keyed on the user id', async () => {
    const phone = '15550400003';
    const userId = 'US.55443322110099887766';
    const id = await orderedBy(phone, userId);
    expect(await pipeline.db.sql`SELECT 1 FROM webhook_rate_limits WHERE phone_number = ${userId}`).toHaveLength(1);

    const report = await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, `+${phone}`);
    expect(report).toMatchObject({ messages: 1, orders: 1, rate_limits: 1 });
    expect(await pipeline.db.sql`SELECT 1 FROM webhook_rate_limits WHERE phone_number = ${userId}`).toHaveLength(0);
    const [order] = await pipeline.db.sql`SELECT phone_number, sender_key FROM orders WHERE message_id = ${id}`;
    expect(order).toEqual({ phone_number: 'erased', sender_key: 'erased' });
  });

  it('given the user id, also reaches the reply and the receipts, which carry the number', async () => {
    const phone = '15550400007';
    const userId = 'US.55443322110099887767';
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, userId, text: '1 coke' });
    await waitFor('the order', async () => (await statusOf(id)) === 'processed');
    const report = await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, userId);
    expect(report).toMatchObject({ messages: 1, orders: 1, replies: 1, rate_limits: 1 });
    expect(await pipeline.db.sql`SELECT recipient, body FROM outbound_messages WHERE inbound_message_id = ${id}`).toEqual([{ recipient: 'erased', body: null }]);
  });
});

describe('erase before the worker gets there', () => {
  it('turns a queued message into "erased": its queue copy makes no order and no reply', async () => {
    const phone = '15550400002';
    const id = uniqueWamid();
    const [running] = pipeline.workers.splice(0, 1);
    await running!.stop();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
    await waitFor('the message published', async () => (await pipeline.db.sql`SELECT 1 FROM outbox`).length === 0);

    const report = await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, phone);
    expect(report).toMatchObject({ messages: 1, orders: 0, replies: 0 });
    expect(await statusOf(id)).toBe('erased');

    const worker = await pipeline.startWorker();
    await waitFor('the queue copy dropped', async () => (await worker.metrics.workerMessages.get()).values.some(
      (v) => v.labels.outcome === 'skipped' && v.value >= 1,
    ));
    expect(await statusOf(id)).toBe('erased');
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).toHaveLength(0);
    expect(await pipeline.db.sql`SELECT 1 FROM outbound_messages WHERE inbound_message_id = ${id}`).toHaveLength(0);
    expect(pipeline.fake.calls().filter((c) => (c.body as { to?: string }).to === phone)).toEqual([]);
  });
});

describe('erase during the provider call', () => {
  it('a refusal that comes after the erase writes back neither its error text nor a dead-letter copy', async () => {
    const phone = '15550400004';
    const id = uniqueWamid();
    // Meta's error text may quote the number it refused.
    pipeline.fake.behave({ kind: 'hold', answer: { kind: 'status', status: 400, metaCode: 131026, message: `Message undeliverable to ${phone}` } }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
    await waitFor('the confirmation in the provider call', () => pipeline.fake.calls().some((c) => (c.body as { to?: string }).to === phone));
    const report = await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, phone);
    expect(report).toMatchObject({ messages: 1, replies: 1, dead_letters: 0 });
    const skippedBefore = await skippedCount();
    pipeline.fake.release();
    await waitFor('the refused message dropped', async () => (await skippedCount()) > skippedBefore);
    expect(await pipeline.db.sql`SELECT status, last_error FROM outbound_messages WHERE inbound_message_id = ${id}`).toEqual([
      { status: 'failed', last_error: 'not sent: the customer was erased' },
    ]);
    expect(await statusOf(id)).toBe('erased');
    expect((await listDead(pipeline.ingest.topology)).map((l) => l.id)).not.toContain(`whatsapp:${id}`);
  });
});

/** An order from `phone`, confirmed: its message's id, and a Meta receipt of the confirmation. */
async function confirmedOrder(phone: string): Promise<{ id: string; wamid: string; receipt(status: string): ReturnType<typeof metaEnvelope> }> {
  const id = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
  await waitFor('the order', async () => (await statusOf(id)) === 'processed');
  const [reply] = await pipeline.db.sql<{ provider_message_id: string }[]>`
    SELECT provider_message_id FROM outbound_messages WHERE inbound_message_id = ${id}`;
  const wamid = reply!.provider_message_id;
  const receipt = (status: string) => metaEnvelope([{ statuses: [{ id: wamid, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: phone }] }]);
  return { id, wamid, receipt };
}

describe('receipts that arrive after the erase', () => {
  it('keep neither the number nor the payload, which would tie the number back to the reply', async () => {
    const phone = '15550400006';
    const { id, wamid, receipt } = await confirmedOrder(phone);
    await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, phone);
    expect((await postMeta(pipeline.ingest.baseUrl, receipt('read'))).status).toBe(200);
    expect(await pipeline.db.sql`SELECT recipient, payload FROM message_statuses WHERE message_id = ${wamid} AND status = 'read'`).toEqual([
      { recipient: null, payload: null },
    ]);
    // The reply still learns it was read.
    expect((await pipeline.db.sql`SELECT delivery_status FROM outbound_messages WHERE inbound_message_id = ${id}`)[0]!.delivery_status).toBe('read');
  });
});

describe('receipts that arrive during the erase', () => {
  it('keep neither the number nor the payload, though the ingest judged them before the erase committed and committed after it', async () => {
    const phone = '15550400007';
    const { wamid, receipt } = await confirmedOrder(phone);
    expect((await postMeta(pipeline.ingest.baseUrl, receipt('delivered'))).status).toBe(200);
    const { sql } = pipeline.db;
    // The locks held and the watching on connections of their own: the erase takes the pool's,
    // and a full pool would queue a check behind the statements it watches.
    const side = sideConnection('wagate-test-erase-race', 6);
    /** A session of this database whose statement holds `text` and waits on a lock. */
    const waitingOnLock = (text: string) => async () => (await side`
      SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE ${`%${text}%`}`).length > 0;
    /** A session of this database whose statement, begun after `since` (running or its last), holds `text`. */
    const ranSince = (text: string, since: string) => async () => (await side`
      SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query_start > ${since}::timestamptz AND query LIKE ${`%${text}%`}`).length > 0;
    // The ingest's statement, as it writes the 'read' receipt (before it locks the reply), waits
    // on a lock the test holds, as a busy machine may hold it up between its snapshot and its commit.
    await side.unsafe(`CREATE OR REPLACE FUNCTION hold_read_receipt() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.status = 'read' AND NEW.message_id = '${wamid}' THEN PERFORM pg_advisory_xact_lock(4207); END IF; RETURN NEW; END $$;
      DROP TRIGGER IF EXISTS hold_read_receipt ON message_statuses;
      CREATE TRIGGER hold_read_receipt BEFORE INSERT ON message_statuses FOR EACH ROW EXECUTE FUNCTION hold_read_receipt()`);
    const ingestHeld = holdInTransaction(side, (tx) => tx`SELECT pg_advisory_xact_lock(4207)`);
    // The erase stops at the receipts, its replies locked and not yet committed ...
    const blocker = holdInTransaction(side, (tx) => tx`SELECT 1 FROM message_statuses WHERE message_id = ${wamid} FOR UPDATE`);
    try {
      await Promise.all([ingestHeld.held, blocker.held]);
      // Its dead letters are another test's: none dropped here, so the held ingest waits no longer than it must.
      const erasing = eraseCustomer(sql, phone, null);
      erasing.catch(() => undefined);
      await waitFor('the erase to wait at the receipts', waitingOnLock('UPDATE message_statuses SET recipient = NULL'));
      // ... while a receipt comes: written with the number, its reply not erased in the ingest's snapshot.
      const reading = postMeta(pipeline.ingest.baseUrl, receipt('read'));
      await waitFor('the ingest to write the receipt', waitingOnLock('wagate_record_batch'));
      const [released] = await side<{ at: string }[]>`SELECT clock_timestamp()::text AS at`;
      await blocker.release();
      // The erase commits, and must not check the receipts before the ingest's commit: it has finished, or
      // is asking pg_stat_activity for the ingest's statements (its query names '<insufficient privilege>').
      let erased = false;
      void erasing.then(() => (erased = true), () => (erased = true));
      await waitFor('the erase to finish, or to wait for the ingest', async () => erased || (await ranSince('<insufficient privilege>', released!.at)()));
      await ingestHeld.release();
      expect(await erasing).toMatchObject({ receipts: 1, late_receipts: 1 });
      expect((await reading).status).toBe(200);
    } finally {
      await Promise.allSettled([ingestHeld.release(), blocker.release()]);
      await side.unsafe('DROP TRIGGER IF EXISTS hold_read_receipt ON message_statuses; DROP FUNCTION IF EXISTS hold_read_receipt()').catch(() => undefined);
      await side.end({ timeout: 1 });
    }
    expect(await sql`SELECT status, recipient, payload FROM message_statuses WHERE message_id = ${wamid} ORDER BY status`).toEqual([
      { status: 'delivered', recipient: null, payload: null },
      { status: 'read', recipient: null, payload: null },
    ]);
  });
});

describe('an erase that deadlocks with a worker writing the same customer\'s rows', () => {
  it('is tried again, and erases everything', async () => {
    const phone = '15550400039';
    const { id } = await confirmedOrder(phone);
    const { sql } = pipeline.db;
    const side = sideConnection('wagate-test-erase-deadlock', 2);
    // The erase is the deadlock's victim: Postgres looks for a deadlock once, when a wait has
    // lasted deadlock_timeout, and the waiter that looks first, once the cycle has formed, gives
    // up. The erase waits first and looks after 10 s, ample for the settle to join the cycle on
    // a busy machine; the settle looks after two minutes.
    const eraser = postgres(pipeline.db.url, { max: 2, onnotice: () => undefined, connection: { application_name: 'wagate-test-eraser', deadlock_timeout: '10s' } }) as unknown as Sql;
    try {
      // As a worker's settle does: the reply's row first, then the message's.
      let messageTurn!: () => void;
      const turn = new Promise<void>((resolve) => (messageTurn = resolve));
      let replyLocked!: () => void;
      const locked = new Promise<void>((resolve) => (replyLocked = resolve));
      const settling = side.begin(async (tx) => {
        await tx`SET LOCAL deadlock_timeout = '120s'`;
        await tx`SELECT 1 FROM outbound_messages WHERE inbound_message_id = ${id} FOR UPDATE`;
        replyLocked();
        await turn;
        await tx`SELECT 1 FROM webhook_messages WHERE message_id = ${id} FOR UPDATE`;
      });
      await locked;
      const erasing = eraseCustomer(eraser, phone, null);
      erasing.catch(() => undefined);
      // The erase holds the message's row and waits on the reply's; the settle then waits on it.
      await waitFor('the erase to wait on the reply\'s row', async () => (await side`
        SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%UPDATE outbound_messages%'`).length > 0);
      messageTurn();
      await settling;
      expect(await erasing).toMatchObject({ messages: 1, orders: 1, replies: 1 });
    } finally {
      await side.end({ timeout: 1 });
      await eraser.end({ timeout: 1 });
    }
    expect(await sql`SELECT phone_number FROM webhook_messages WHERE message_id = ${id}`).toEqual([{ phone_number: 'erased' }]);
    expect(await sql`SELECT recipient, body FROM outbound_messages WHERE inbound_message_id = ${id}`).toEqual([{ recipient: 'erased', body: null }]);
  }, 180_000);
});

describe('a message that arrives during the erase', () => {
  it.each([
    ['with an order on file', '15550400009', true, undefined],
    // The erase finds nothing to erase, and still waits for the ingest's statements under way.
    ['with nothing on file yet', '15550400019', false, undefined],
    // Keyed on a user id the first pass never saw: its rate-limit row goes too.
    ['with nothing on file yet, whom Meta names by user id', '15550400029', false, 'US.late0user1id2'],
  ])('of a customer %s is erased too, though the ingest recorded it in a statement begun before the erase committed, and is never answered', async (_case, phone, onFile, userId) => {
    // The customer asks to be erased, and writes (again) as it runs.
    if (onFile) await confirmedOrder(phone);
    const id = uniqueWamid();
    const { sql } = pipeline.db;
    const side = sideConnection('wagate-test-erase-message-race', 4);
    const waitingOnLock = (text: string) => async () => (await side`
      SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE ${`%${text}%`}`).length > 0;
    const ranSince = (text: string, since: string) => async () => (await side`
      SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query_start > ${since}::timestamptz AND query LIKE ${`%${text}%`}`).length > 0;
    // The ingest's statement recording the message waits on a lock the test holds, between its
    // snapshot (the erase not yet committed) and its commit, as a busy machine may hold it up.
    await side.unsafe(`CREATE OR REPLACE FUNCTION hold_erased_message() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.message_id = '${id}' THEN PERFORM pg_advisory_xact_lock(4209); END IF; RETURN NEW; END $$;
      DROP TRIGGER IF EXISTS hold_erased_message ON webhook_messages;
      CREATE TRIGGER hold_erased_message BEFORE INSERT ON webhook_messages FOR EACH ROW EXECUTE FUNCTION hold_erased_message()`);
    const ingestHeld = holdInTransaction(side, (tx) => tx`SELECT pg_advisory_xact_lock(4209)`);
    try {
      await ingestHeld.held;
      const posting = postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke', ...(userId ? { userId } : {}) });
      await waitFor('the ingest to record the message', waitingOnLock('wagate_record_batch'));
      const [started] = await side<{ at: string }[]>`SELECT clock_timestamp()::text AS at`;
      const erasing = eraseCustomer(sql, phone, null);
      erasing.catch(() => undefined);
      // The erase has committed and waits for the ingest's statement; without that wait it is done.
      let erased = false;
      void erasing.then(() => (erased = true), () => (erased = true));
      await waitFor('the erase to finish, or to wait for the ingest', async () => erased || (await ranSince('<insufficient privilege>', started!.at)()));
      await ingestHeld.release();
      expect(await erasing).toMatchObject({ late_messages: 1 });
      expect((await posting).status).toBe(200);
    } finally {
      await ingestHeld.release().catch(() => undefined);
      await side.unsafe('DROP TRIGGER IF EXISTS hold_erased_message ON webhook_messages; DROP FUNCTION IF EXISTS hold_erased_message()').catch(() => undefined);
      await side.end({ timeout: 1 });
    }
    // Erased before the worker took it (it is dropped then), or after it answered it (its order
    // and reply then lose the number, as any other of the customer's).
    const [message] = await sql<{ status: string; phone_number: string; payload: unknown }[]>`SELECT status, phone_number, payload FROM webhook_messages WHERE message_id = ${id}`;
    expect(message).toEqual({ status: expect.stringMatching(/^(erased|processed)$/), phone_number: 'erased', payload: null });
    expect(await sql`SELECT phone_number FROM webhook_rate_limits WHERE phone_number IN (${phone}, ${userId ?? phone})`).toEqual([]);
    expect(await sql`SELECT phone_number, customer_name FROM orders WHERE message_id = ${id} AND (phone_number <> 'erased' OR customer_name IS NOT NULL)`).toEqual([]);
    expect(await sql`SELECT recipient FROM outbound_messages WHERE inbound_message_id = ${id} AND (recipient <> 'erased' OR body IS NOT NULL)`).toEqual([]);
    // Nothing left to publish: the erase deleted the row, or, once a worker had answered the
    // message, the relay deletes it after its publish's confirm, which may come just after.
    await waitFor('no outbox row for the message', async () =>
      (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id WHERE m.message_id = ${id}`)[0]!.n === 0);
  });
});

describe('a message that arrives during the erase and is dead-lettered before the erase reaches it', () => {
  it('loses its dead letter too: the erase sweeps the queue again after its late pass', async () => {
    const phone = '15550400017';
    await confirmedOrder(phone);
    const id = uniqueWamid();
    const { sql } = pipeline.db;
    const side = sideConnection('wagate-test-erase-letter-race', 4);
    // A statement of an ingest session begun before the erase commits, which the erase waits
    // for before its late pass: it ends only when the test lets it.
    const ingestLike = sideConnection(`${INGEST_APPLICATION_NAME} held by the test`, 1);
    await side.unsafe(`CREATE OR REPLACE FUNCTION hold_lettered_message() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.message_id = '${id}' THEN PERFORM pg_advisory_xact_lock(4211); END IF; RETURN NEW; END $$;
      DROP TRIGGER IF EXISTS hold_lettered_message ON webhook_messages;
      CREATE TRIGGER hold_lettered_message BEFORE INSERT ON webhook_messages FOR EACH ROW EXECUTE FUNCTION hold_lettered_message()`);
    const insertHeld = holdInTransaction(side, (tx) => tx`SELECT pg_advisory_xact_lock(4211)`);
    const lateHeld = holdInTransaction(side, (tx) => tx`SELECT pg_advisory_xact_lock(4212)`);
    let erasing: Promise<Record<string, number>> | undefined;
    try {
      await Promise.all([insertHeld.held, lateHeld.held]);
      const blocking = ingestLike`SELECT pg_advisory_xact_lock(4212)`;
      blocking.catch(() => undefined);
      const waitingOnLock = async (text: string) => (await side`
        SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE ${`%${text}%`}`).length > 0;
      await waitFor('the held ingest statement to run', () => waitingOnLock('pg_advisory_xact_lock(4212)'));
      // Meta refuses the confirmation for good: the worker dead-letters the message.
      pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131026, message: 'Message undeliverable' }, 1);
      const posting = postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
      await waitFor('the ingest to record the message', () => waitingOnLock('wagate_record_batch'));
      // The erase's sweeps of the dead-letter queue, counted as they end.
      let sweeps = 0;
      const topology = pipeline.ingest.topology;
      erasing = eraseCustomer(sql, phone, async (matches) => {
        const dropped = await withOperatorChannel(operator(topology), (channel) => dropDeadLetters(channel, topology, matches));
        sweeps += 1;
        return dropped;
      });
      erasing.catch(() => undefined);
      // Past the erase's commit and its first sweep, the message commits and is dead-lettered
      // while the erase still waits for the ingest's statements.
      await waitFor('the erase\'s first sweep of the dead-letter queue', () => sweeps === 1);
      await insertHeld.release();
      expect((await posting).status).toBe(200);
      await waitFor('the message dead-lettered', async () => (await statusOf(id)) === 'dead');
      // Its record is written dead once the broker has confirmed the letter.
      expect((await listDead(topology)).map((letter) => letter.id)).toContain(`whatsapp:${id}`);
      await lateHeld.release();
      expect(await erasing).toMatchObject({ late_messages: 1, dead_letters: 0, late_dead_letters: 1 });
      expect(sweeps).toBe(2);
    } finally {
      await insertHeld.release().catch(() => undefined);
      await lateHeld.release().catch(() => undefined);
      await erasing?.catch(() => undefined);
      await side.unsafe('DROP TRIGGER IF EXISTS hold_lettered_message ON webhook_messages; DROP FUNCTION IF EXISTS hold_lettered_message()').catch(() => undefined);
      await Promise.all([side.end({ timeout: 1 }), ingestLike.end({ timeout: 1 })]);
    }
    expect((await listDead(pipeline.ingest.topology)).map((letter) => letter.id)).not.toContain(`whatsapp:${id}`);
    expect(await sql`SELECT status, phone_number, payload FROM webhook_messages WHERE message_id = ${id}`).toEqual([
      { status: 'dead', phone_number: 'erased', payload: null },
    ]);
  });
});

describe('a malformed part recorded during the erase', () => {
  it('loses the raw body that carries the customer\'s number, though it names no sender the late pass could look up', async () => {
    const phone = '15550400018';
    await confirmedOrder(phone);
    const { sql } = pipeline.db;
    const id = uniqueWamid();
    // An ingest session records a malformed receipt part (its body holds the number, its columns
    // do not) in a statement begun before the erase commits, and commits after it.
    const ingestLike = sideConnection(`${INGEST_APPLICATION_NAME} held by the test`, 1);
    const side = sideConnection('wagate-test-erase-malformed-race', 2);
    const commitHeld = holdInTransaction(side, (tx) => tx`SELECT pg_advisory_xact_lock(4213)`);
    let erasing: Promise<Record<string, number>> | undefined;
    try {
      await commitHeld.held;
      const recording = ingestLike.begin(async (tx) => {
        await tx`INSERT INTO webhook_messages (webhook_source, message_id, status, raw_body, last_error) VALUES
          ('whatsapp', ${id}, 'malformed', ${`{"entry":[{"changes":[{"value":{"statuses":[{"recipient_id":"${phone}","status":42}]}}]}]}`}, 'bad part')`;
        await tx`SELECT pg_advisory_xact_lock(4213)`;
      });
      recording.catch(() => undefined);
      await waitFor('the malformed part to wait for its commit', async () => (await side`
        SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock(%' AND application_name LIKE ${`${INGEST_APPLICATION_NAME}%`}`).length > 0);
      erasing = eraseCustomer(sql, phone, null, { ingestStatementTimeoutMs: 60_000 });
      erasing.catch(() => undefined);
      await waitFor('the erase to commit its first pass', async () => (await sql`SELECT 1 FROM orders WHERE phone_number = ${phone}`).length === 0);
      await commitHeld.release();
      await recording;
      expect(await erasing).toMatchObject({ late_malformed_bodies: 1 });
    } finally {
      await commitHeld.release().catch(() => undefined);
      await erasing?.catch(() => undefined);
      await Promise.all([side.end({ timeout: 1 }), ingestLike.end({ timeout: 1 })]);
    }
    expect(await sql`SELECT raw_body FROM webhook_messages WHERE message_id = ${id}`).toEqual([{ raw_body: null }]);
  });
});

describe('a message sent once the erase has committed', () => {
  it('is answered, and keeps what it needs to be: the erase\'s second pass takes only what came in before its commit', async () => {
    const phone = '15550400010';
    await confirmedOrder(phone);
    const after = uniqueWamid();
    // The customer writes again while the erase waits for the dead-letter queue, after its commit.
    const report = await eraseCustomer(pipeline.db.sql, phone, async () => {
      await postMetaText(pipeline.ingest.baseUrl, { id: after, from: phone, text: '1 coke' });
      await waitFor('the later message to be answered', async () => (await statusOf(after)) === 'processed');
      return 0;
    });
    expect(report).toMatchObject({ messages: 1, late_messages: 0 });
    expect(await pipeline.db.sql`SELECT phone_number FROM webhook_messages WHERE message_id = ${after}`).toEqual([{ phone_number: phone }]);
    expect(await pipeline.db.sql`SELECT o.phone_number, r.status FROM orders o JOIN outbound_messages r ON r.order_id = o.id WHERE o.message_id = ${after}`)
      .toEqual([{ phone_number: phone, status: 'sent' }]);
  });
});

describe('erase during the provider call, answered with an unknown outcome', () => {
  it('keeps the reply unknown without the provider\'s text, which may quote the number', async () => {
    const phone = '15550400005';
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'hold', answer: { kind: 'status', status: 502, message: `upstream failed for ${phone}` } }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
    await waitFor('the confirmation in the provider call', () => pipeline.fake.calls().some((c) => (c.body as { to?: string }).to === phone));
    expect(await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, phone)).toMatchObject({ messages: 1, replies: 1 });
    pipeline.fake.release();
    await waitFor('the reply settled as unknown', async () =>
      (await pipeline.db.sql`SELECT status FROM outbound_messages WHERE inbound_message_id = ${id}`)[0]?.status === 'unknown');
    expect(await pipeline.db.sql`SELECT last_error FROM outbound_messages WHERE inbound_message_id = ${id}`).toEqual([
      { last_error: 'the provider\'s answer is not kept: the customer was erased' },
    ]);
  });

  it('clears the number and payload of a receipt that came before the reply knew its provider id, once an operator settles it', async () => {
    const phone = '15550400015';
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 502, message: 'upstream failed' }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
    await waitFor('the reply settled as unknown', async () =>
      (await pipeline.db.sql`SELECT status FROM outbound_messages WHERE inbound_message_id = ${id}`)[0]?.status === 'unknown');
    await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, phone);
    // Meta delivered it after all: its receipt names a message id no reply holds yet.
    const wamid = uniqueWamid();
    const receipt = metaEnvelope([{ statuses: [{ id: wamid, status: 'delivered', timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: phone }] }]);
    expect((await postMeta(pipeline.ingest.baseUrl, receipt)).status).toBe(200);
    const [reply] = await pipeline.db.sql<{ id: string }[]>`SELECT id::text FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(await settleReply(pipeline.db.sql, reply!.id, 'sent', wamid)).toBe('delivered');
    expect(await pipeline.db.sql`SELECT recipient, payload FROM message_statuses WHERE message_id = ${wamid}`).toEqual([
      { recipient: null, payload: null },
    ]);
  });
});

describe('erase and malformed bodies', () => {
  it('removes a raw body that carries the customer\'s number, and keeps the others', async () => {
    const { sql } = pipeline.db;
    const phone = '15550400011';
    const theirs = uniqueWamid();
    const others = uniqueWamid();
    // A Meta envelope whose other part was malformed: the row names another sender, the body holds this one.
    await sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status, raw_body, last_error) VALUES
      ('whatsapp', ${theirs}, '15550400012', 'malformed', ${`{"entry":[{"changes":[{"value":{"messages":[{"from":"${phone}","text":{"body":"my address is 1 Main St"}}]}}]}]}`}, 'bad part'),
      ('whatsapp', ${others}, '15550400012', 'malformed', '{"entry":[{"changes":[{"value":{"messages":[{"from":"15550400012"}]}}]}]}', 'bad part')`;
    const report = await eraseEverywhere(sql, pipeline.ingest.topology, phone);
    expect(report.malformed_bodies).toBe(1);
    const rows = await sql`SELECT message_id, raw_body IS NULL AS erased FROM webhook_messages WHERE message_id IN (${theirs}, ${others}) ORDER BY message_id = ${theirs} DESC`;
    expect(rows).toEqual([{ message_id: theirs, erased: true }, { message_id: others, erased: false }]);
  });

  it('finds a Meta user id with letters as written, and leaves a body that only shares its digits', async () => {
    const { sql } = pipeline.db;
    // A customer known by a username only: Meta sends their business-scoped user id, no number.
    const userId = 'US.a1b2c3d4e5f6g7h8';
    const [theirs, others] = [uniqueWamid(), uniqueWamid()];
    await sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status, raw_body, last_error) VALUES
      ('whatsapp', ${theirs}, '15550400016', 'malformed', ${`{"entry":[{"changes":[{"value":{"messages":[{"user_id":"${userId}","text":{"body":"my address is 1 Main St"}}]}}]}]}`}, 'bad part'),
      ('whatsapp', ${others}, '15550400016', 'malformed', '{"entry":[{"changes":[{"value":{"messages":[{"from":"15550400016","text":{"body":"order 12345678"}}]}}]}]}', 'bad part')`;
    expect((await eraseEverywhere(sql, pipeline.ingest.topology, userId)).malformed_bodies).toBe(1);
    const rows = await sql`SELECT message_id, raw_body IS NULL AS erased FROM webhook_messages WHERE message_id IN (${theirs}, ${others}) ORDER BY message_id = ${theirs} DESC`;
    expect(rows).toEqual([{ message_id: theirs, erased: true }, { message_id: others, erased: false }]);
  });

  it('searches a body kept as base64 (not UTF-8, or text Postgres cannot store) in its bytes', async () => {
    const { sql } = pipeline.db;
    const phone = '15550400013';
    const [theirs, others] = [uniqueWamid(), uniqueWamid()];
    const kept = (from: string) => `base64:${Buffer.concat([Buffer.from(`{"entry":[{"from":"${from}","text":"`), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')]).toString('base64')}`;
    await sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status, raw_body, last_error) VALUES
      ('whatsapp', ${theirs}, '15550400014', 'malformed', ${kept(phone)}, 'bad part'),
      ('whatsapp', ${others}, '15550400014', 'malformed', ${kept('15550400014')}, 'bad part')`;
    expect((await eraseEverywhere(sql, pipeline.ingest.topology, phone)).malformed_bodies).toBe(1);
    const rows = await sql`SELECT message_id, raw_body IS NULL AS erased FROM webhook_messages WHERE message_id IN (${theirs}, ${others}) ORDER BY message_id = ${theirs} DESC`;
    expect(rows).toEqual([{ message_id: theirs, erased: true }, { message_id: others, erased: false }]);
  });
});

describe('a reply whose text retention removed', () => {
  it('is not reopened by a replay, nor resent: nothing but the word null would go out', async () => {
    const { sql } = pipeline.db;
    const inbound = uniqueWamid();
    await sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, status, last_error, payload)
              VALUES ('twilio', ${inbound}, 'whatsapp:+15550400009', 'whatsapp:+15550400009', 'dead', 'reply failed for good', '{"Body":"1 coke"}')`;
    const [failed] = await sql`INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, body)
              VALUES (${`reply:twilio:${inbound}`}, 'twilio', ${inbound}, 'whatsapp:+15550400009', 'whatsapp:+15550000000', 'order_confirmation', 'failed', NULL) RETURNING id::text`;
    expect(await reopenDeadMessage(sql, { source: 'twilio', messageId: inbound }, [], async () => true)).toBe('replayed');
    expect(await sql`SELECT status FROM outbound_messages WHERE id = ${failed!.id}`).toEqual([{ status: 'failed' }]);
    await sql`UPDATE webhook_messages SET status = 'dead' WHERE message_id = ${inbound}`;

    const [unknown] = await sql`INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, body)
              VALUES (${`reply:twilio:${inbound}:2`}, 'twilio', ${`${inbound}.2`}, 'whatsapp:+15550400009', 'whatsapp:+15550000000', 'order_confirmation', 'unknown', NULL) RETURNING id::text`;
    let sends = 0;
    const send = async () => {
      sends += 1;
      return { kind: 'sent' as const, providerMessageId: 'SM-never' };
    };
    await expect(resendReply(sql, unknown!.id, send, createMetrics('test'))).rejects.toThrow(/has no text any more .* settle it instead/);
    expect(sends).toBe(0);
    expect(await sql`SELECT status FROM outbound_messages WHERE id = ${unknown!.id}`).toEqual([{ status: 'unknown' }]);
  });
});

describe('cleanup', () => {
  it('refuses a retention shorter than the replay window plus 5 minutes, or longer than the orders\' retention', () => {
    const config = loadConfig({});
    expect(checkRetention(config, 8)).toMatch(/shorter than the replay window/);
    expect(checkRetention(config, 9)).toBeNull();
    expect(checkRetention(config, 365)).toBeNull();
    expect(checkRetention(config, 366)).toMatch(/longer than ORDER_RETENTION_DAYS \(365\)/);
  });

  it('deletes old finished rows in batches, keeps Twilio keys for the full retention, and never touches unpublished work', async () => {
    const sql = pipeline.db.sql;
    await sql`
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status, payload, created_at) VALUES
        ('whatsapp', 'old-processed', '1', 'processed', '{"x":1}', now() - interval '10 days'),
        ('whatsapp', 'old-queued', '1', 'queued', '{"x":1}', now() - interval '10 days'),
        ('twilio', 'SMold', '1', 'processed', '{"x":1}', now() - interval '10 days'),
        ('whatsapp', 'recent-processed', '1', 'processed', '{"x":1}', now() - interval '8 days')`;
    await sql`INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() FROM webhook_messages WHERE message_id = 'old-queued'`;
    await sql`
      INSERT INTO message_statuses (webhook_source, message_id, status, created_at) VALUES
        ('whatsapp', 'wamid.old-receipt', 'delivered', now() - interval '10 days'),
        ('twilio', 'SMold-receipt', 'delivered', now() - interval '10 days')`;
    await sql`
      INSERT INTO customer_languages (webhook_source, sender_key, language, updated_at) VALUES
        ('whatsapp', '15550400091', 'es', now() - interval '10 days'),
        ('twilio', 'whatsapp:+15550400092', 'de', now() - interval '8 days')`;
    const report = await runCleanup(sql, pipeline.ingest.config, { days: 9, personalDataDays: 7, orderDays: 365 });
    expect(report.webhook_messages_whatsapp).toBe(1);
    // The number a language is remembered under goes with the customer's messages.
    expect(report.customer_languages).toBe(1);
    expect(await sql`SELECT sender_key FROM customer_languages WHERE sender_key LIKE '%155504000_%'`).toEqual([{ sender_key: 'whatsapp:+15550400092' }]);
    expect(report.webhook_messages_twilio).toBe(0);
    // Receipt keys as message keys: Twilio's kept for the full retention, a replayed callback stays a duplicate.
    expect(await sql`SELECT message_id FROM message_statuses WHERE message_id IN ('wamid.old-receipt', 'SMold-receipt')`).toEqual([{ message_id: 'SMold-receipt' }]);
    const left = await sql<{ message_id: string; payload: unknown }[]>`
      SELECT message_id, payload FROM webhook_messages WHERE message_id IN ('old-processed', 'old-queued', 'SMold', 'recent-processed') ORDER BY message_id`;
    expect(left).toEqual([
      { message_id: 'SMold', payload: null },
      { message_id: 'old-queued', payload: { x: 1 } },
      { message_id: 'recent-processed', payload: null },
    ]);
    await sql`DELETE FROM outbox WHERE webhook_message_id IN (SELECT id FROM webhook_messages WHERE message_id = 'old-queued')`;
  });

  it('keeps a Meta key until its message\'s own timestamp is as old as the retention, so a message signed days ahead stays a duplicate', async () => {
    const sql = pipeline.db.sql;
    const ahead = uniqueWamid();
    const day = 86_400;
    const timestamp = Math.floor(Date.now() / 1000) - 7 * day;
    // Refused 10 days ago as signed 3 days ahead; replayed now, its timestamp is inside the 8-day window.
    await sql`
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status, message_timestamp, created_at) VALUES
        ('whatsapp', ${ahead}, '15550400093', 'replay_rejected', to_timestamp(${timestamp}), now() - interval '10 days')`;
    await sql`
      INSERT INTO message_statuses (webhook_source, message_id, status, status_timestamp, created_at) VALUES
        ('whatsapp', ${ahead}, 'read', to_timestamp(${timestamp}), now() - interval '10 days')`;
    await runCleanup(sql, pipeline.ingest.config, { days: 9, personalDataDays: 7, orderDays: 365 });
    expect(await sql`SELECT status FROM message_statuses WHERE message_id = ${ahead}`).toEqual([{ status: 'read' }]);
    expect((await postMetaText(pipeline.ingest.baseUrl, { id: ahead, from: '15550400093', text: '1 coke', timestamp })).status).toBe(200);
    expect(await sql`SELECT status, duplicate_count FROM webhook_messages WHERE message_id = ${ahead}`).toEqual([{ status: 'replay_rejected', duplicate_count: 1 }]);
  });

  it('keeps orders and their replies for ORDER_RETENTION_DAYS, and never removes a reply still being sent', async () => {
    const sql = pipeline.db.sql;
    const [oldOrder] = await sql<{ id: string }[]>`
      INSERT INTO orders (webhook_source, message_id, phone_number, sender_key, total, currency, created_at)
      VALUES ('whatsapp', 'order-old', '1', '1', 1, 'USD', now() - interval '40 days') RETURNING id`;
    await sql`INSERT INTO order_items (order_id, line, sku, name, quantity, unit_price)
      SELECT ${oldOrder!.id}, 1, sku, name, 1, price FROM products LIMIT 1`;
    await sql`INSERT INTO orders (webhook_source, message_id, phone_number, sender_key, total, currency, created_at)
      VALUES ('whatsapp', 'order-recent', '1', '1', 1, 'USD', now() - interval '20 days')`;
    await sql`INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, order_id, recipient, business_number, kind, status, created_at) VALUES
      ('k-old-sent', 'whatsapp', 'order-old', ${oldOrder!.id}, '1', '2', 'confirmation', 'sent', now() - interval '40 days'),
      ('k-old-retry', 'whatsapp', 'order-old-retry', NULL, '1', '2', 'confirmation', 'retry', now() - interval '40 days'),
      ('k-recent', 'whatsapp', 'order-recent', NULL, '1', '2', 'confirmation', 'sent', now() - interval '20 days')`;

    const report = await runCleanup(sql, pipeline.ingest.config, { days: 9, personalDataDays: 7, orderDays: 30 });
    expect(report).toMatchObject({ orders: 1, outbound_messages: 1 });
    expect((await sql`SELECT message_id FROM orders WHERE message_id LIKE 'order-%'`).map((r) => r.message_id)).toEqual(['order-recent']);
    expect(await sql`SELECT 1 FROM order_items WHERE order_id = ${oldOrder!.id}`).toHaveLength(0);
    const replies = await sql`SELECT idempotency_key FROM outbound_messages WHERE idempotency_key LIKE 'k-%' ORDER BY 1`;
    expect(replies.map((r) => r.idempotency_key)).toEqual(['k-old-retry', 'k-recent']);
    await sql`DELETE FROM outbound_messages WHERE idempotency_key LIKE 'k-%'`;
  });

  it('keeps the order and reply of a message still on its way past ORDER_RETENTION_DAYS, so the replay of its letter confirms that order and writes no second', async () => {
    const sql = pipeline.db.sql;
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550400071', text: '1 coke' });
    await waitFor('the dead letter', async () => (await statusOf(id)) === 'dead');
    await waitFor('the copy in the DLQ', async () => (await listDead(pipeline.ingest.topology)).some((l) => l.id === `whatsapp:${id}`));
    // As a worker leaves them when its dead write does not land after the letter went out
    // (Postgres failing over), 40 days ago: the record processing, the reply waiting to retry.
    await sql`UPDATE webhook_messages SET status = 'processing', created_at = now() - interval '40 days', updated_at = now() - interval '40 days' WHERE message_id = ${id}`;
    await sql`UPDATE outbound_messages SET status = 'retry', created_at = now() - interval '40 days' WHERE inbound_message_id = ${id}`;
    const [order] = await sql<{ id: string }[]>`UPDATE orders SET created_at = now() - interval '40 days' WHERE message_id = ${id} RETURNING id`;

    await runCleanup(sql, pipeline.ingest.config, { days: 9, personalDataDays: 7, orderDays: 30 });
    expect(await sql`SELECT id FROM orders WHERE message_id = ${id}`).toEqual([{ id: order!.id }]);

    expect((await replayDead(sql, pipeline.ingest.topology, [`whatsapp:${id}`])).replayed).toEqual([`whatsapp:${id}`]);
    await waitFor('the replayed message', async () => (await statusOf(id)) === 'processed');
    expect(await sql`SELECT id FROM orders WHERE message_id = ${id}`).toEqual([{ id: order!.id }]);
    expect(await sql`SELECT status, order_id FROM outbound_messages WHERE inbound_message_id = ${id}`).toEqual([{ status: 'sent', order_id: order!.id }]);

    // Finished, its order and reply go at the next run.
    await runCleanup(sql, pipeline.ingest.config, { days: 9, personalDataDays: 7, orderDays: 30 });
    expect(await sql`SELECT 1 FROM orders WHERE message_id = ${id} UNION ALL SELECT 1 FROM outbound_messages WHERE inbound_message_id = ${id}`).toHaveLength(0);
  }, 60_000);

  it('clears the customer\'s name and cart note from orders after the personal-data retention, and keeps the orders', async () => {
    const sql = pipeline.db.sql;
    await sql`INSERT INTO orders (webhook_source, message_id, phone_number, sender_key, customer_name, note, total, currency, created_at) VALUES
      ('whatsapp', 'noted-old', '1', '1', 'Ana', 'ring twice', 1, 'USD', now() - interval '10 days'),
      ('whatsapp', 'noted-only', '1', '1', NULL, 'leave at the door', 1, 'USD', now() - interval '10 days'),
      ('whatsapp', 'noted-recent', '1', '1', 'Ben', 'for 7 pm', 1, 'USD', now() - interval '2 days')`;
    const report = await runCleanup(sql, pipeline.ingest.config, { days: 9, personalDataDays: 7, orderDays: 365 });
    expect(report.personal_data_orders).toBeGreaterThanOrEqual(2);
    expect(await sql`SELECT message_id, customer_name, note FROM orders WHERE message_id LIKE 'noted-%' ORDER BY message_id`).toEqual([
      { message_id: 'noted-old', customer_name: null, note: null },
      { message_id: 'noted-only', customer_name: null, note: null },
      { message_id: 'noted-recent', customer_name: 'Ben', note: 'for 7 pm' },
    ]);
  });

  it('reads old orders and replies through their created_at indexes', async () => {
    const indexes = await pipeline.db.sql`
      SELECT indexname FROM pg_indexes WHERE indexname IN ('orders_created_at_idx', 'outbound_messages_created_at_idx') ORDER BY 1`;
    expect(indexes.map((r) => r.indexname)).toEqual(['orders_created_at_idx', 'outbound_messages_created_at_idx']);
  });
});
