import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { shardOf } from '../../src/queue/topology';
import { bodyOf, deleteTopology, openQueueProbe, TEST_AMQP_URL } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { randomQueuePrefix, startTestIngest, testEnv, type TestIngest } from '../support/ingest';
import { MAIN_JS } from '../support/process';

let db: TestDatabase;
let ingest: TestIngest;
const PUBLIC_BASE_URL = 'https://gateway.example.com';

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});

afterAll(async () => {
  await ingest?.stop();
  if (ingest) {
    await deleteTopology(ingest.topology);
  }
  await db.drop();
});

const QUEUE_PREFIX = randomQueuePrefix();

function wagate(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], {
      env: { PATH: process.env.PATH ?? '', ...testEnv(db.url, { PUBLIC_BASE_URL, QUEUE_PREFIX }), ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Puts a letter in the dead-letter queue, as a worker's dead-lettering would, confirmed. */
async function deadLetter(queue: string, body: unknown, messageId: string): Promise<void> {
  const connection = await amqp.connect(TEST_AMQP_URL);
  try {
    const channel = await connection.createConfirmChannel();
    channel.sendToQueue(queue, Buffer.from(JSON.stringify(body)), { persistent: true, messageId });
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
}

describe('wagate command line', () => {
  it('says to run migrate when a command meets a database without the schema', async () => {
    const result = await wagate(['replies', 'unknown']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/relation "outbound_messages" does not exist\n {2}the database \S+ lacks a table, column or function wagate uses: if this release has not migrated it, run `wagate migrate`/);
  });

  it('migrate applies the schema and is idempotent', async () => {
    expect((await wagate(['migrate'])).code).toBe(0);
    expect((await wagate(['migrate'])).code).toBe(0);
    const rows = await db.sql`SELECT count(*)::int AS n FROM schema_migrations`;
    expect(rows[0]!.n).toBeGreaterThan(0);
  });

  it('stops with exit 1 and names the invalid variable without echoing it', async () => {
    const result = await wagate(['ingest'], { PORT: 'eighty-eighty' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/wagate ingest: invalid configuration: PORT/);
    expect(result.stderr).not.toContain('eighty-eighty');
  });

  it('refuses a dev METRICS_PORT whose next port, the worker\'s metrics, is no port or is PORT, before starting anything', async () => {
    for (const env of [{ METRICS_PORT: '65535', PORT: '0' }, { METRICS_PORT: '18090', PORT: '18091' }]) {
      const result = await wagate(['dev'], env);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/wagate dev: .*METRICS_PORT: wagate dev puts the worker's metrics on METRICS_PORT \+ 1/);
      // Not Node's own error after the ingest was listening.
      expect(result.stderr).not.toMatch(/ERR_SOCKET_BAD_PORT|EADDRINUSE|ingest listening/);
    }
  });

  it('refuses to start a production worker whose configured source has no reply credentials', async () => {
    const result = await wagate(['worker'], { NODE_ENV: 'production', TWILIO_AUTH_TOKEN: '', WHATSAPP_ACCESS_TOKEN: '' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/wagate worker: invalid configuration: WHATSAPP_ACCESS_TOKEN: is required by the worker/);
  });

  it('refuses an unsupported OTLP protocol with a message, not a stack trace', async () => {
    const result = await wagate(['migrate'], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^wagate migrate: invalid configuration: OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('runs as `npx wagate` from the project, through its bin entry', async () => {
    const result = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn('npx', ['--no-install', 'wagate', 'migrate'], {
        cwd: path.resolve(__dirname, '../..'),
        env: { ...process.env, ...testEnv(db.url, { QUEUE_PREFIX, LOG_LEVEL: 'info' }) },
      });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.on('exit', (code) => resolve({ code, stdout }));
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/"msg":"(migrations applied|database already up to date)"/);
  });

  it('explains unknown commands and missing options with exit 2', async () => {
    const unknown = await wagate(['launch']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "launch"/);
    const release = await wagate(['release']);
    expect(release.code).toBe(2);
    expect(release.stderr).toMatch(/release needs --phone/);
  });

  it('refuses arguments a command would ignore, and flags an action does not take, with exit 2 and before reaching Postgres', async () => {
    const unreachable = { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' };
    const refusals: Array<[string[], RegExp]> = [
      [['migrate', '--dry-run'], /migrate takes no arguments \(got "--dry-run"\)/],
      [['ingest', '--port', '3001'], /ingest takes no arguments/],
      [['requeue-stuck', '--all'], /requeue-stuck takes no arguments/],
      [['products', 'import', 'a.csv', 'b.csv'], /products import takes one FILE.csv and no options but --deactivate-missing \[--yes\] \(got also "b.csv"\)/],
      [['products', 'import', 'a.csv', '--yes'], /products import takes --yes only with --deactivate-missing/],
      [['products', 'import', 'a.csv', '--all'], /Unknown option '--all'/],
      [['dlq', 'list', '--all'], /Unknown option '--all'/],
      [['dlq', 'replay', '--yes'], /Unknown option '--yes'/],
      [['replies', 'unknown', '--id', '5'], /Unknown option '--id'/],
      [['erase', '--phone', '+15550400031', '--phone', '+15550400032'], /erase takes one --phone; run it once per number/],
      [['erase', '--phone', 'Bob'], /--phone must be the customer's number in international form/],
      [['release', '--phone', '030 1234567'], /--phone must be the customer's number in international form/],
      [['release', '--phone', 'us 1349'], /or Meta's user id, such as US\.13491208655302741918/],
      [['reshard', '--to', '4', '--to', '8'], /--to is given twice; give it once/],
      [['help', 'dlq', 'extra'], /help takes one command at most \(got also "extra"\)/],
      [['--help', 'dlq', 'list'], /--help takes one command at most \(got also "list"\)/],
    ];
    for (const [args, message] of refusals) {
      const result = await wagate(args, unreachable);
      expect([args.join(' '), result.code, result.stderr]).toEqual([args.join(' '), 2, expect.stringMatching(message)]);
    }
  });

  it('send posts correctly signed Meta and Twilio samples to a running gateway', async () => {
    ingest = await startTestIngest(db.url, { PUBLIC_BASE_URL, QUEUE_PREFIX, TWILIO_WEBHOOK_SHARED_KEY: 'cli-shared-key' });
    const meta = await wagate(['send', '--url', ingest.baseUrl, '--text', 'hi', '--id', 'wamid.cli-sample', '--from', '15559990000']);
    expect(meta.code).toBe(0);
    expect(meta.stdout).toMatch(/^200 EVENT_RECEIVED/);
    const twilio = await wagate(['send', '--provider', 'twilio', '--url', ingest.baseUrl, '--text', 'hola', '--id', 'SMc1100000000000000000000000000001', '--to', '+15550009999']);
    expect(twilio.code).toBe(0);
    expect(twilio.stdout).toMatch(/^200 <\?xml/);
    // In an ingest pod that holds only a Webhook Rule's shared key, signed with that key as the Rule signs.
    const ruled = await wagate(['send', '--provider', 'twilio', '--url', ingest.baseUrl, '--text', 'hola', '--id', 'SMc1100000000000000000000000000002'], { TWILIO_AUTH_TOKEN: '', TWILIO_WEBHOOK_SHARED_KEY: 'cli-shared-key' });
    expect([ruled.code, ruled.stdout]).toEqual([0, expect.stringMatching(/^200 <\?xml/)]);
    // An id the gateway would keep as malformed is refused before anything is sent.
    const made = await wagate(['send', '--provider', 'twilio', '--url', ingest.baseUrl, '--text', 'hola', '--id', 'SMcli-sample']);
    expect(made.code).not.toBe(0);
    expect(made.stderr).toContain('--id SMcli-sample is not a Twilio message id: give SM and 32 hex digits');
    const rows = await db.sql`SELECT webhook_source, message_id, status FROM webhook_messages ORDER BY id`;
    expect(rows).toEqual([
      { webhook_source: 'whatsapp', message_id: 'wamid.cli-sample', status: 'queued' },
      { webhook_source: 'twilio', message_id: 'SMc1100000000000000000000000000001', status: 'queued' },
      { webhook_source: 'twilio', message_id: 'SMc1100000000000000000000000000002', status: 'queued' },
    ]);
    // The business number is addressed as Twilio addresses it, whichever form was typed.
    const [twilioPayload] = await db.sql<{ to: string }[]>`SELECT payload->>'business' AS to FROM webhook_messages WHERE message_id = 'SMc1100000000000000000000000000001'`;
    expect(twilioPayload?.to).toBe('whatsapp:+15550009999');
    const refused = await wagate(['send', '--url', ingest.baseUrl], { WHATSAPP_APP_SECRET: 'not-the-gateway-secret' });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^401/);
  });

  it('dlq replay routes by the shard count the system runs with, whatever this shell\'s WORK_SHARDS says', async () => {
    // The running system is sharded 4 ways (the ingest above stored it); the operator's shell is left at the default, 32.
    const topology = topologyFromConfig(loadConfig(testEnv(db.url, { QUEUE_PREFIX })));
    expect(topology.shards).toHaveLength(4);
    const probe = await openQueueProbe();
    const connection = await amqp.connect(TEST_AMQP_URL);
    try {
      const [message] = (await probe.drainWork(topology)).filter((m) => bodyOf(m).messageId === 'wamid.cli-sample');
      const senderKey = String(bodyOf(message!).senderKey);
      // Routed 32 ways, this sender would land on a shard the system does not have.
      expect([shardOf(senderKey, 32), shardOf(senderKey, 4)]).toEqual([29, 1]);
      await db.sql`UPDATE webhook_messages SET status = 'dead' WHERE message_id = 'wamid.cli-sample'`;
      const channel = await connection.createConfirmChannel();
      channel.sendToQueue(topology.deadQueue, message!.content, { persistent: true, messageId: 'whatsapp:wamid.cli-sample' });
      await channel.waitForConfirms();
      // An id named twice is one letter, replayed once.
      const byId = ['dlq', 'replay', '--id', 'whatsapp:wamid.cli-sample', '--id', 'whatsapp:wamid.cli-sample'];
      const replay = await wagate(byId, { WORK_SHARDS: '32' });
      expect([replay.code, replay.stdout.trim()]).toEqual([0, 'replayed 1 message(s)']);
      const again = await wagate(byId);
      expect([again.code, again.stderr.trim()]).toEqual([1, 'wagate dlq: failed: not in the dead-letter queue (see wagate dlq list): whatsapp:wamid.cli-sample']);
      const replayed = await probe.drainWork(topology);
      expect(replayed.map((m) => [m.fields.routingKey, bodyOf(m).messageId])).toEqual([['work.1', 'wamid.cli-sample']]);
    } finally {
      await connection.close();
      await probe.close();
    }
  });

  it('dlq purge --id drops the letters named and gives the others back', async () => {
    const topology = topologyFromConfig(loadConfig(testEnv(db.url, { QUEUE_PREFIX, WORK_SHARDS: '4' })));
    const connection = await amqp.connect(TEST_AMQP_URL);
    try {
      const channel = await connection.createConfirmChannel();
      for (const id of ['whatsapp:wamid.purge-never', 'whatsapp:wamid.purge-keep', 'twilio:SMpurge-never']) {
        channel.sendToQueue(topology.deadQueue, Buffer.from(`{"letter":"${id}"}`), { persistent: true, messageId: id });
      }
      await channel.waitForConfirms();
      const purge = await wagate(['dlq', 'purge', '--yes', '--id', 'whatsapp:wamid.purge-never', '--id', 'twilio:SMpurge-never', '--id', 'whatsapp:wamid.not-there']);
      expect([purge.code, purge.stdout.trim(), purge.stderr.trim()]).toEqual([1,
        'purged 2 message(s): whatsapp:wamid.purge-never, twilio:SMpurge-never',
        'wagate dlq: failed: not in the dead-letter queue (see wagate dlq list): whatsapp:wamid.not-there']);
      const left = await wagate(['dlq', 'list']);
      expect(left.stdout.trim().split('\n').map((line) => line.split('\t')[0])).toEqual(['whatsapp:wamid.purge-keep']);
      expect((await wagate(['dlq', 'purge', '--yes'])).stdout.trim()).toBe('purged 1 message(s)');
    } finally {
      await connection.close();
    }
  });

  it('dlq purge records a purged letter\'s message dead, so that requeue-stuck does not bring it back', async () => {
    const topology = topologyFromConfig(loadConfig(testEnv(db.url, { QUEUE_PREFIX, WORK_SHARDS: '4' })));
    // A worker published this letter and could not record it (Postgres away past its write's
    // retries): the record is still processing two hours on, its reply never sent.
    const messageId = 'wamid.purged-while-processing';
    const sender = '15550700002';
    await db.sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload, updated_at)
                 VALUES ('whatsapp', ${messageId}, ${sender}, ${sender}, '100', 'processing', '{}'::jsonb, now() - interval '2 hours')`;
    await db.sql`INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status)
                 VALUES (${`reply:whatsapp:${messageId}`}, 'whatsapp', ${messageId}, ${sender}, '100', 'order_confirmation', 'Order #9', 'pending')`;
    const letter = { v: 1, source: 'whatsapp', messageId, from: sender, senderKey: sender, business: '100', contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: {} };
    await deadLetter(topology.deadQueue, letter, `whatsapp:${messageId}`);
    const purge = await wagate(['dlq', 'purge', '--yes', '--id', `whatsapp:${messageId}`]);
    expect([purge.code, purge.stdout.trim()]).toEqual([0, `purged 1 message(s): whatsapp:${messageId}`]);
    expect(await db.sql`SELECT status, last_error FROM webhook_messages WHERE message_id = ${messageId}`).toEqual([{ status: 'dead', last_error: 'its dead letter was purged by an operator' }]);
    expect(await db.sql`SELECT status FROM outbound_messages WHERE inbound_message_id = ${messageId}`).toEqual([{ status: 'failed' }]);
    const requeue = await wagate(['requeue-stuck']);
    expect([requeue.code, requeue.stdout]).toEqual([0, expect.stringMatching(/^requeued 0 stuck message\(s\)/)]);

    // Its worker is still recording it dead (the record changed a moment ago): that write may
    // yet fail, so the letter stays, and the record is left to it.
    await db.sql`UPDATE webhook_messages SET status = 'processing', last_error = NULL, updated_at = now() WHERE message_id = ${messageId}`;
    await deadLetter(topology.deadQueue, letter, `whatsapp:${messageId}`);
    const early = await wagate(['dlq', 'purge', '--yes', '--id', `whatsapp:${messageId}`]);
    expect([early.code, early.stdout.trim(), early.stderr.trim()]).toEqual([1, 'purged 0 message(s)',
      `wagate dlq: failed: kept, since a worker may still be recording their message dead: whatsapp:${messageId}; purge them again in a minute`]);
    expect(await db.sql`SELECT status FROM webhook_messages WHERE message_id = ${messageId}`).toEqual([{ status: 'processing' }]);
    expect((await wagate(['dlq', 'list'])).stdout).toContain(`whatsapp:${messageId}`);
    await db.sql`UPDATE webhook_messages SET updated_at = now() - interval '2 hours' WHERE message_id = ${messageId}`;
    expect((await wagate(['dlq', 'purge', '--yes'])).stdout.trim()).toBe('purged 1 message(s)');
  });

  it('products import loads a catalog and reports bad rows by line, importing nothing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wagate-cli-'));
    writeFileSync(path.join(dir, 'good.csv'), 'sku,name,price,currency,aliases\nPIZ,Pizza,8.50,EUR,pie|pizza pie\n');
    writeFileSync(path.join(dir, 'bad.csv'), 'sku,name,price,currency,aliases\nCOKE,Coke,abc,EUR,\nTEA,,1.00,EUR,\n');
    const good = await wagate(['products', 'import', path.join(dir, 'good.csv')]);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/imported 1 product\(s\): 1 new/);
    const bad = await wagate(['products', 'import', path.join(dir, 'bad.csv')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/line 2: price/);
    expect(bad.stderr).toMatch(/line 3: name/);
    writeFileSync(path.join(dir, 'windows.csv'), Buffer.from('sku,name,price,currency,aliases\nCAFE,Café,2.00,EUR,\n', 'latin1'));
    const windows = await wagate(['products', 'import', path.join(dir, 'windows.csv')]);
    expect([windows.code, windows.stderr]).toEqual([1, expect.stringContaining('line 2: encoding: byte 0xE9 is not UTF-8')]);
    expect((await db.sql`SELECT sku FROM products ORDER BY sku`).map((r) => r.sku)).toEqual(['PIZ']);
  });

  it('dlq list, purge and cleanup answer operators clearly', async () => {
    const list = await wagate(['dlq', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/the dead-letter queue is empty/);
    const purge = await wagate(['dlq', 'purge']);
    expect(purge.code).toBe(2);
    expect(purge.stderr).toMatch(/pass --yes/);
    expect((await wagate(['dlq', 'purge', '--yes'])).stdout).toMatch(/purged 0 message/);
    const cleanup = await wagate(['cleanup', '--days', '3']);
    expect(cleanup.code).toBe(2);
    expect(cleanup.stderr).toMatch(/shorter than the replay window/);
    const cleaned = await wagate(['cleanup', '--days', '30']);
    expect(cleaned.code).toBe(0);
    expect(cleaned.stdout).toMatch(/webhook_messages_whatsapp\t0/);
  });

  it('requeue-stuck reports how many messages it put back', async () => {
    const result = await wagate(['requeue-stuck']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/requeued 0 stuck message\(s\)/);
  });

  it('requeue-stuck waits out a longer retry tier the group declared while messages wait in it, not only the shell\'s own', async () => {
    // The group's workers declared a 6-hour tier; this shell has the default delays (30 minutes at most).
    const sixHours = 6 * 3_600_000;
    await db.sql`INSERT INTO retry_tier_delays (queue_prefix, delay_ms) VALUES (${QUEUE_PREFIX}, ${sixHours})`;
    const tierQueue = topologyFromConfig(loadConfig(testEnv(db.url, { QUEUE_PREFIX, RETRY_DELAYS_MS: String(sixHours) }))).retryTiers[0]!.queue;
    const waited = async (hours: number) => {
      const messageId = `wamid.requeue-stuck-${hours}h`;
      await db.sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload, updated_at)
                   VALUES ('whatsapp', ${messageId}, '15550700001', '15550700001', '100', 'queued', '{}'::jsonb, now() - make_interval(hours => ${hours}))`;
      return messageId;
    };
    const requeued = async () => (await db.sql<{ message_id: string }[]>`
      SELECT m.message_id FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id WHERE m.message_id LIKE 'wamid.requeue-stuck-%'`).map((row) => row.message_id);
    const inTier = await waited(2);
    const lost = await waited(8);
    const connection = await amqp.connect(TEST_AMQP_URL);
    try {
      // A retry waits in that tier: a message untouched for 2 hours may be one of them.
      const channel = await connection.createConfirmChannel();
      await channel.assertQueue(tierQueue, { durable: true });
      channel.sendToQueue(tierQueue, Buffer.from('{}'), { persistent: true });
      await channel.waitForConfirms();
      const first = await wagate(['requeue-stuck']);
      expect([first.code, first.stdout.trim()]).toEqual([0,
        'requeued 1 stuck message(s), untouched for more than 420 min (an earlier, longer retry tier of the group, with messages waiting, 360 min, and an hour); running ingest processes publish them']);
      expect(await requeued()).toEqual([lost]);

      // The tier empty (given up since, its retries come back), the shell's delays are the measure again.
      await channel.deleteQueue(tierQueue);
      const second = await wagate(['requeue-stuck']);
      expect([second.code, second.stdout.trim()]).toEqual([0, expect.stringMatching(/^requeued 1 stuck message\(s\), untouched for more than 90 min \(the longest tier of RETRY_DELAYS_MS, 30 min, and an hour\)/)]);
      expect((await requeued()).sort()).toEqual([inTier, lost].sort());
    } finally {
      await connection.close();
      await db.sql`DELETE FROM outbox`;
    }
  });

  it('release reports how many messages it re-queued', async () => {
    const result = await wagate(['release', '--phone', ' +1 (555) 999-0000 ']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/released 0 rate_limited message\(s\)/);
    // A number wagate has never seen: said so, rather than a release with nothing to do.
    const unknown = await wagate(['release', '--phone', '+15559990404']);
    expect([unknown.code, unknown.stdout]).toEqual([0, expect.stringContaining('nothing held or counted for +15559990404: check the number (or its Meta user id)')]);
    expect(result.stdout).not.toContain('nothing held or counted');
    const byUserId = await wagate(['release', '--phone', 'US.13491208655302741918']);
    expect([byUserId.code, byUserId.stdout]).toEqual([0, expect.stringMatching(/released 0 rate_limited message\(s\)/)]);
  });
});
