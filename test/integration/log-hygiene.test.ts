import { spawn } from 'node:child_process';
import http from 'node:http';
import amqp from 'amqplib';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { LAST_ERROR_HEADER } from '../../src/queue/headers';
import { TEST_AMQP_URL } from '../support/amqp';
import { STATS_PATH } from '../../src/http/app';
import { META_WEBHOOK_PATH } from '../../src/webhooks/meta';
import { metaEnvelope, metaSignature, metaTextEnvelope, twilioSignature, twilioTextForm } from '../../src/webhooks/samples';
import { TWILIO_WEBHOOK_PATH } from '../../src/webhooks/twilio';
import { ADMIN_TOKEN, META_SECRET, TWILIO_TOKEN, VERIFY_TOKEN } from '../support/ingest';
import { ACCESS_TOKEN, PUBLIC_BASE_URL, startPipeline, type Pipeline } from '../support/pipeline';
import { MAIN_JS, spawnWagate, type ChildIngest } from '../support/process';
import { postMeta, postTwilio, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

let pipeline: Pipeline;
let children: ChildIngest[] = [];

beforeAll(async () => {
  pipeline = await startPipeline({ RETRY_DELAYS_MS: '100' });
  children = [await spawnWagate('ingest', pipeline.env), await spawnWagate('worker', pipeline.env)];
});

afterAll(async () => {
  await Promise.all(children.map((child) => child.stop()));
  await pipeline.stop();
});

describe('logs', () => {
  it('never carry secrets, signatures or message bodies, even when things fail', async () => {
    const body = 'two pizzas for the secret-garden party 🍕';
    const id = uniqueWamid();
    const envelope = JSON.stringify(metaTextEnvelope({ id, from: '15550600001', text: body }));
    const signature = metaSignature(META_SECRET, envelope);
    // A failing provider makes the worker log errors and dead-letter the message.
    pipeline.fake.behave({ kind: 'status', status: 503 }, 2);
    expect((await postMeta(children[0]!.baseUrl, envelope)).status).toBe(200);
    expect((await postMeta(children[0]!.baseUrl, envelope, { signature: 'sha256=' + '0'.repeat(64) })).status).toBe(401);
    expect((await postMeta(children[0]!.baseUrl, '{"broken": ', {})).status).toBe(200);
    await waitFor('the message to be dead-lettered', async () =>
      (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status === 'dead',
    );
    await waitFor('the worker to log the dead letter', () => children[1]!.logs.some((entry) => entry.msg === 'message dead-lettered'));
    const text = children.flatMap((child) => child.logs).map((entry) => JSON.stringify(entry)).join('\n');
    expect(text.length).toBeGreaterThan(0);
    for (const forbidden of [body, 'secret-garden', META_SECRET, signature.slice(7), ACCESS_TOKEN, 'guest:guest']) {
      expect(text).not.toContain(forbidden);
    }
  });
});

/** Every export request body, as sent (OTLP over http/json, so attributes are plain text). */
async function startOtlpSink(): Promise<{ url: string; bodies: string[]; close(): Promise<void> }> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, bodies, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function runCli(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], { env: { PATH: process.env.PATH ?? '', ...env, LOG_LEVEL: 'debug' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => resolve(`${output}\nexit ${code}`));
  });
}

/** The last-error header of every letter in the queue, read without taking any away. */
async function lastErrorHeaders(queue: string): Promise<string[]> {
  const connection = await amqp.connect(TEST_AMQP_URL);
  try {
    const channel = await connection.createChannel();
    const headers: string[] = [];
    for (let message = await channel.get(queue); message; message = await channel.get(queue)) {
      headers.push(String(message.properties.headers?.[LAST_ERROR_HEADER] ?? ''));
    }
    channel.nackAll(true);
    await channel.close();
    return headers;
  } finally {
    await connection.close();
  }
}

async function finished(messageId: string): Promise<boolean> {
  const [row] = await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${messageId}`;
  return row?.status === 'processed' || row?.status === 'unmatched';
}

describe('a full run at LOG_LEVEL=debug', () => {
  let sink: Awaited<ReturnType<typeof startOtlpSink>>;
  let debugChildren: ChildIngest[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    // The worker above would stay the queues' single active consumer: this run's worker must do the work.
    await Promise.all(children.map((child) => child.stop()));
    sink = await startOtlpSink();
    env = { ...pipeline.env, OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '100' };
    debugChildren = [await spawnWagate('ingest', env, 20000, 'debug'), await spawnWagate('worker', env, 20000, 'debug')];
  });

  afterAll(async () => {
    await Promise.all(debugChildren.map((child) => child.stop()));
    await sink.close();
  });

  it('carries no secret, signature or message body in logs, metrics, spans, stored errors, answers or the CLI', async () => {
    const baseUrl = debugChildren[0]!.baseUrl;
    const metaText = 'debug-level order for the hidden-lagoon picnic, 3 coke';
    const failingText = 'debug-level order that the provider refuses, marker-zq7';
    const twilioText = 'twilio order for the moonlit-orchard, 2 coke';
    const answers: string[] = [];
    const send = async (body: string, signature = metaSignature(META_SECRET, body)) => {
      const reply = await postMeta(baseUrl, body, { signature });
      answers.push(`${reply.status} ${reply.body}`);
      return reply.status;
    };

    const ok = uniqueWamid();
    const okBody = JSON.stringify(metaTextEnvelope({ id: ok, from: '15550600011', text: metaText }));
    expect(await send(okBody)).toBe(200);
    await waitFor('the order', () => finished(ok));

    // The provider's refusal quotes the customer's number, as some of Meta's and Twilio's do.
    const quotedNumber = '+1 (555) 060-0012';
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047, message: `Message to ${quotedNumber} failed: outside the allowed window` }, 1);
    const failing = uniqueWamid();
    const failingBody = JSON.stringify(metaTextEnvelope({ id: failing, from: '15550600012', text: failingText }));
    expect(await send(failingBody)).toBe(200);
    await waitFor('the dead letter', async () => (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${failing}`)[0]?.status === 'dead');

    // An error Meta reports in a webhook, quoting a number in its details.
    const reportedNumber = '+1 (555) 060-0014';
    const reported = JSON.stringify(metaEnvelope([{ errors: [{ code: 131026, title: 'Message undeliverable', error_data: { details: `Recipient ${reportedNumber} cannot be reached` } }] }]));
    expect(await send(reported)).toBe(200);

    // Failures at the door: a wrong signature over a real body, and a body that is not JSON.
    expect(await send(okBody.replace('hidden', 'hiddem'), metaSignature('not-the-secret', okBody))).toBe(401);
    expect(await send(`{"text": "${metaText}`)).toBe(200);

    const sid = `SM${'7'.repeat(32)}`;
    const form = twilioTextForm({ sid, from: 'whatsapp:+15550600013', to: 'whatsapp:+15550000000', text: twilioText });
    const twilioSig = twilioSignature(TWILIO_TOKEN, PUBLIC_BASE_URL + TWILIO_WEBHOOK_PATH, form);
    expect((await postTwilio(baseUrl, form, { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    expect((await postTwilio(baseUrl, form, { publicBaseUrl: PUBLIC_BASE_URL, signature: twilioSig.slice(0, -2) + 'AA' })).status).toBe(401);
    await waitFor('the Twilio order', () => finished(sid));

    const verify = await fetch(`${baseUrl}${META_WEBHOOK_PATH}?hub.mode=subscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=42`);
    const wrongAdmin = await fetch(`${baseUrl}${STATS_PATH}`, { headers: { Authorization: 'Bearer wrong-admin-guess-8f3k2' } });
    const admin = await fetch(`${baseUrl}${STATS_PATH}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    answers.push(await verify.text(), await wrongAdmin.text(), await admin.text());
    expect([verify.status, wrongAdmin.status, admin.status]).toEqual([200, 401, 200]);

    await waitFor('spans from both processes', () => ['wagate.ledger.record', 'wagate.process'].every((name) => sink.bodies.join('').includes(name)) || null);
    const metrics = await Promise.all(debugChildren.map((child) => fetch(child.metricsUrl).then((r) => r.text())));
    const storedErrors = await pipeline.db.sql`
      SELECT last_error FROM webhook_messages WHERE last_error IS NOT NULL
      UNION ALL SELECT last_error FROM outbound_messages WHERE last_error IS NOT NULL`;
    const cli = await Promise.all([
      runCli(['dlq', 'list'], env),
      runCli(['replies', 'unknown'], env),
      runCli(['release', '--phone', '+15550600011'], env),
      runCli(['cleanup'], env),
      // Failures of the CLI: credentials that are wrong, and an unreachable database.
      runCli(['dlq', 'list'], { ...env, AMQP_URL: 'amqp://guest:amqp-pass-9w2x@127.0.0.1:5672' }),
      runCli(['cleanup'], { ...env, DATABASE_URL: 'postgres://postgres:db-pass-4k8q@127.0.0.1:1/wagate' }),
    ]);
    expect(cli[4]).toMatch(/exit [1-9]/);
    expect(cli[5]).toMatch(/exit [1-9]/);

    // The dead letters' last-error headers, as the management UI shows them.
    const deadLetterHeaders = await lastErrorHeaders(topologyFromConfig(loadConfig(env)).deadQueue);

    const logs = debugChildren.flatMap((child) => child.logs).map((entry) => JSON.stringify(entry));
    const everything = {
      logs: logs.join('\n'),
      metrics: metrics.join('\n'),
      spans: sink.bodies.join('\n'),
      storedErrors: JSON.stringify(storedErrors),
      answers: answers.join('\n'),
      cli: cli.join('\n'),
      deadLetterHeaders: deadLetterHeaders.join('\n'),
    };
    for (const [where, text] of Object.entries(everything)) expect({ where, empty: text.length === 0 }).toEqual({ where, empty: false });
    const forbidden = [
      metaText, 'hidden-lagoon', failingText, 'marker-zq7', twilioText, 'moonlit-orchard',
      META_SECRET, TWILIO_TOKEN, ADMIN_TOKEN, VERIFY_TOKEN, ACCESS_TOKEN, 'wrong-admin-guess-8f3k2',
      metaSignature(META_SECRET, okBody).slice(7), metaSignature(META_SECRET, failingBody).slice(7), twilioSig,
      'guest:guest', 'amqp-pass-9w2x', 'db-pass-4k8q',
    ];
    for (const [where, text] of Object.entries(everything)) {
      const found = forbidden.filter((secret) => text.includes(secret));
      expect({ where, found }).toEqual({ where, found: [] });
    }
    // Postgres keeps the provider's text, where `wagate erase` reaches it; logs, traces and the command line's lists do not.
    expect(everything.storedErrors).toContain(quotedNumber);
    for (const where of ['logs', 'spans', 'cli', 'deadLetterHeaders'] as const) {
      expect({ where, quoted: everything[where].includes('060-0012') || everything[where].includes('060-0014') }).toEqual({ where, quoted: false });
      expect({ where, masked: everything[where].includes('Message to <number> failed') }).toEqual({ where, masked: true });
    }
  });
});
