import { PassThrough } from 'node:stream';
import { createDatabase } from '../../src/db/client';
import { META_WEBHOOK_PATH } from '../../src/webhooks/meta';
import { encodeForm, metaEnvelope, metaSignature, metaTextEnvelope, twilioSignature } from '../../src/webhooks/samples';
import { MAX_TWILIO_BODY_BYTES, TWILIO_WEBHOOK_PATH, type FormParams } from '../../src/webhooks/twilio';
import { createTestDatabase, withPort, type TestDatabase } from '../support/database';
import { createInProcessIngest, counterValue, type InProcessIngest } from '../support/in-process';
import { META_SECRET, TWILIO_TOKEN } from '../support/ingest';
import { twilioText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * The README's "What each input gets" table, row by row, against the ingest's request
 * listener called in-process (no port, no child process) with the real recorder and Postgres.
 */
const PUBLIC_BASE_URL = 'https://gateway.example.com';
const RATE_LIMIT = 2;
/** A port nothing listens on: connecting to it is refused at once. */
const CLOSED_PORT = 1;

let db: TestDatabase;
let ingest: InProcessIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  ingest = createInProcessIngest(db.sql, db.url, { RATE_LIMIT_MAX_REQUESTS: String(RATE_LIMIT), PUBLIC_BASE_URL });
});

afterAll(async () => {
  await ingest.drain();
  await db.drop();
});

const nowSeconds = () => Math.floor(Date.now() / 1000);

function postMeta(target: InProcessIngest, body: object | string, headers: Record<string, string> = {}) {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  return target.request({
    method: 'POST',
    url: META_WEBHOOK_PATH,
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': metaSignature(META_SECRET, raw), ...headers },
    payload: raw,
  });
}

function postText(target: InProcessIngest, message: { id?: string; from: string; timestamp?: number }) {
  return postMeta(target, metaTextEnvelope({ id: message.id ?? uniqueWamid(), from: message.from, text: 'one coke', timestamp: message.timestamp }));
}

async function rowOf(id: string) {
  const [row] = await db.sql`SELECT status, duplicate_count, raw_body FROM webhook_messages WHERE message_id = ${id}`;
  return row;
}

async function outboxRowsOf(id: string): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id WHERE m.message_id = ${id}`;
  return row!.n;
}

/** An ingest whose Postgres address refuses every connection at once. */
function ingestWithoutPostgres() {
  const unreachable = createDatabase({
    url: withPort(db.url, CLOSED_PORT),
    maxConnections: 1,
    connectTimeoutSeconds: 2,
    statementTimeoutMs: 1000,
    applicationName: 'wagate-test',
  });
  return { unreachable, cut: createInProcessIngest(unreachable, db.url) };
}

const messageCount = async () => (await db.sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM webhook_messages`)[0]!.n;

describe('what each input gets, in-process against the real recorder', () => {
  it('answers a new genuine message 200 after the commit, recorded queued and in the outbox once', async () => {
    const id = uniqueWamid();
    const reply = await postText(ingest, { id, from: '15550500001' });
    expect(reply.statusCode).toBe(200);
    expect(reply.body).toBe('EVENT_RECEIVED');
    expect(await rowOf(id)).toMatchObject({ status: 'queued', duplicate_count: 0 });
    expect(await outboxRowsOf(id)).toBe(1);
  });

  it('answers the same message id again 200 and counts a duplicate without queueing it again', async () => {
    const id = uniqueWamid();
    await postText(ingest, { id, from: '15550500002' });
    const again = await postText(ingest, { id, from: '15550500002' });
    expect(again.statusCode).toBe(200);
    expect(await rowOf(id)).toMatchObject({ status: 'queued', duplicate_count: 1 });
    expect(await outboxRowsOf(id)).toBe(1);
  });

  it('answers a sender over the rate limit 200 and records the message rate_limited, not queued', async () => {
    const from = '15550500003';
    for (let sent = 0; sent < RATE_LIMIT; sent += 1) expect((await postText(ingest, { from })).statusCode).toBe(200);
    const id = uniqueWamid();
    expect((await postText(ingest, { id, from })).statusCode).toBe(200);
    expect(await rowOf(id)).toMatchObject({ status: 'rate_limited' });
    expect(await outboxRowsOf(id)).toBe(0);
  });

  it('answers a timestamp older than the replay window, or more than 5 minutes ahead, 200 and records replay_rejected', async () => {
    const old = uniqueWamid();
    const ahead = uniqueWamid();
    const tooOld = nowSeconds() - ingest.config.REPLAY_WINDOW_SECONDS - 60;
    const tooFarAhead = nowSeconds() + 10 * 60;
    expect((await postText(ingest, { id: old, from: '15550500004', timestamp: tooOld })).statusCode).toBe(200);
    expect((await postText(ingest, { id: ahead, from: '15550500004', timestamp: tooFarAhead })).statusCode).toBe(200);
    expect(await rowOf(old)).toMatchObject({ status: 'replay_rejected' });
    expect(await rowOf(ahead)).toMatchObject({ status: 'replay_rejected' });
    expect((await outboxRowsOf(old)) + (await outboxRowsOf(ahead))).toBe(0);
  });

  it('answers a status receipt 200 and keeps it once per (source, id, status), never as a message', async () => {
    const outbound = uniqueWamid();
    const body = metaEnvelope([{ statuses: [{ id: outbound, status: 'delivered', timestamp: String(nowSeconds()), recipient_id: '15550500005' }] }]);
    expect((await postMeta(ingest, body)).statusCode).toBe(200);
    expect((await postMeta(ingest, body)).statusCode).toBe(200);
    const receipts = await db.sql`SELECT status FROM message_statuses WHERE message_id = ${outbound}`;
    expect(receipts.map((row) => row.status)).toEqual(['delivered']);
    expect(await rowOf(outbound)).toBeUndefined();
  });

  it('answers a message of an unknown type in a valid envelope 200 and queues it for the worker', async () => {
    const id = uniqueWamid();
    const body = metaEnvelope([{ messages: [{ from: '15550500006', id, timestamp: String(nowSeconds()), type: 'hologram', hologram: { beam: 1 } }] }]);
    expect((await postMeta(ingest, body)).statusCode).toBe(200);
    expect(await rowOf(id)).toMatchObject({ status: 'queued' });
    expect(await outboxRowsOf(id)).toBe(1);
  });

  it('answers a message nested thousands of levels deep 200 and keeps it malformed: no retry could serialise it', async () => {
    const id = uniqueWamid();
    const nested = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const message = { from: '15550500016', id, timestamp: String(nowSeconds()), type: 'hologram', hologram: 'NESTED' };
    const raw = JSON.stringify(metaEnvelope([{ messages: [message] }])).replace('"NESTED"', nested);
    expect((await postMeta(ingest, raw)).statusCode).toBe(200);
    expect(await rowOf(id)).toMatchObject({ status: 'malformed' });
    expect(await outboxRowsOf(id)).toBe(0);
  });

  it('answers a status receipt nested thousands of levels deep 200 and keeps it malformed, not as a receipt', async () => {
    const id = uniqueWamid();
    const status = { id, status: 'delivered', timestamp: String(nowSeconds()), recipient_id: '15550500017', pricing: 'NESTED' };
    const raw = JSON.stringify(metaEnvelope([{ statuses: [status] }])).replace('"NESTED"', `${'['.repeat(10_000)}${']'.repeat(10_000)}`);
    expect((await postMeta(ingest, raw)).statusCode).toBe(200);
    expect(await db.sql`SELECT 1 FROM message_statuses WHERE message_id = ${id}`).toHaveLength(0);
    const [malformed] = await db.sql<{ raw_body: string }[]>`
      SELECT raw_body FROM webhook_messages WHERE status = 'malformed' AND raw_body LIKE ${`%${id}%`}`;
    expect(malformed?.raw_body).toContain('delivered');
  });

  it('answers errors Meta reports in a change 200, counts them as provider_error and records nothing', async () => {
    const before = await counterValue(ingest.metrics, 'wagate_webhook_events_total', { source: 'whatsapp', outcome: 'provider_error' });
    const rows = await messageCount();
    const body = metaEnvelope([{ errors: [{ code: 131000, title: 'Something went wrong' }] }]);
    expect((await postMeta(ingest, body)).statusCode).toBe(200);
    const after = await counterValue(ingest.metrics, 'wagate_webhook_events_total', { source: 'whatsapp', outcome: 'provider_error' });
    expect(after - before).toBe(1);
    expect(await messageCount()).toBe(rows);
  });

  it('answers a change with nothing to record (another field than messages) 200, counted ignored, also while Postgres cannot be reached', async () => {
    const { cut, unreachable } = ingestWithoutPostgres();
    try {
      // A template's status, which Meta sends to the same endpoint when the app subscribes to it.
      const body = {
        object: 'whatsapp_business_account',
        entry: [{ id: '102290129340398', changes: [{ field: 'message_template_status_update', value: { event: 'APPROVED', message_template_id: 1 } }] }],
      };
      expect((await postMeta(cut, body)).statusCode).toBe(200);
      expect(await counterValue(cut.metrics, 'wagate_webhook_events_total', { source: 'whatsapp', outcome: 'ignored' })).toBe(1);
      // A message in the same state is refused: it has something to record.
      expect((await postText(cut, { from: '15550500010' })).statusCode).toBe(503);
    } finally {
      await unreachable.end({ timeout: 0 });
    }
  });

  it('answers a signed body that is not a valid envelope 200, keeps it malformed with its raw bytes, and a retry is a duplicate', async () => {
    const raw = `{"object":"not-whatsapp","nonce":"${uniqueWamid()}"}`;
    expect((await postMeta(ingest, raw)).statusCode).toBe(200);
    expect((await postMeta(ingest, raw)).statusCode).toBe(200);
    const [row] = await db.sql`SELECT status, duplicate_count, raw_body FROM webhook_messages WHERE raw_body = ${raw}`;
    expect(row).toMatchObject({ status: 'malformed', duplicate_count: 1, raw_body: raw });
  });

  it('answers a missing or bad signature 401 and records nothing', async () => {
    const id = uniqueWamid();
    const raw = JSON.stringify(metaTextEnvelope({ id, from: '15550500007', text: 'one coke' }));
    const missing = await ingest.request({ method: 'POST', url: META_WEBHOOK_PATH, headers: { 'content-type': 'application/json' }, payload: raw });
    const wrong = await postMeta(ingest, raw, { 'x-hub-signature-256': metaSignature('another-secret', raw) });
    expect([missing.statusCode, wrong.statusCode]).toEqual([401, 401]);
    expect(await rowOf(id)).toBeUndefined();
  });

  it('answers a method a webhook path does not take 405, and OPTIONS 204, naming the ones it does', async () => {
    const put = await ingest.request({ method: 'PUT', url: META_WEBHOOK_PATH, payload: '{}' });
    expect([put.statusCode, put.headers.allow]).toEqual([405, 'GET, HEAD, POST']);
    const get = await ingest.request({ method: 'GET', url: TWILIO_WEBHOOK_PATH });
    expect([get.statusCode, get.headers.allow]).toEqual([405, 'POST']);
    const options = await ingest.request({ method: 'OPTIONS', url: META_WEBHOOK_PATH });
    expect([options.statusCode, options.headers.allow]).toEqual([204, 'GET, HEAD, POST, OPTIONS']);
    expect((await ingest.request({ method: 'GET', url: '/no/such/path' })).statusCode).toBe(404);
  });

  it('answers a body over MAX_BODY_BYTES 413', async () => {
    const huge = JSON.stringify({ padding: 'x'.repeat(ingest.config.MAX_BODY_BYTES + 10) });
    const reply = await postMeta(ingest, huge);
    expect(reply.statusCode).toBe(413);
    expect(reply.body).toBe(`body exceeds ${ingest.config.MAX_BODY_BYTES} bytes`);
  });

  it('answers a compressed body 415: the signature covers the bytes as sent', async () => {
    const id = uniqueWamid();
    const reply = await postMeta(ingest, metaTextEnvelope({ id, from: '15550500008', text: 'x' }), { 'content-encoding': 'gzip' });
    expect(reply.statusCode).toBe(415);
    expect(await rowOf(id)).toBeUndefined();
  });

  it('records a body whose Content-Encoding header is empty, as some proxies send it: it names no coding', async () => {
    const id = uniqueWamid();
    const reply = await postMeta(ingest, metaTextEnvelope({ id, from: '15550500018', text: 'x' }), { 'content-encoding': '' });
    expect(reply.statusCode).toBe(200);
    expect(await rowOf(id)).toMatchObject({ status: 'queued' });
  });

  it('answers 503 with Retry-After when Postgres cannot be reached, and records nothing', async () => {
    const { cut, unreachable } = ingestWithoutPostgres();
    try {
      const id = uniqueWamid();
      const reply = await postText(cut, { id, from: '15550500009' });
      expect(reply.statusCode).toBe(503);
      expect(reply.headers['retry-after']).toBe('5');
      expect(await rowOf(id)).toBeUndefined();
    } finally {
      await unreachable.end({ timeout: 0 });
    }
  });

  it('answers 200 while the broker is away: the message waits in the outbox', async () => {
    // This ingest has no broker at all; the commit alone decides the answer.
    const id = uniqueWamid();
    expect((await postText(ingest, { id, from: '15550500010' })).statusCode).toBe(200);
    expect(await outboxRowsOf(id)).toBe(1);
  });

  it('answers 503 at once beyond MAX_IN_FLIGHT requests in this process', async () => {
    const narrow = createInProcessIngest(db.sql, db.url, { MAX_IN_FLIGHT: '1' });
    const id = uniqueWamid();
    const raw = JSON.stringify(metaTextEnvelope({ id, from: '15550500011', text: 'one coke' }));
    // The first request's body is still arriving, so it holds the only slot.
    const body = new PassThrough();
    const first = narrow.request({
      method: 'POST',
      url: META_WEBHOOK_PATH,
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': metaSignature(META_SECRET, raw) },
      payload: body,
    });
    await waitFor('the first request in flight', async () => (await counterValue(narrow.metrics, 'wagate_http_in_flight_requests', {})) === 1);
    const refused = await postText(narrow, { from: '15550500012' });
    expect(refused.statusCode).toBe(503);
    expect(refused.body).toBe('overloaded');
    // A small body is read to its end and its connection serves again; a large or unannounced one closes it.
    expect(refused.headers.connection).not.toBe('close');
    const large = await postMeta(narrow, JSON.stringify(metaTextEnvelope({ id: uniqueWamid(), from: '15550500013', text: 'x'.repeat(70 * 1024) })));
    expect([large.statusCode, large.headers.connection]).toEqual([503, 'close']);
    body.end(raw);
    expect((await first).statusCode).toBe(200);
    expect(await rowOf(id)).toMatchObject({ status: 'queued' });
  });

  it('closes each connection it answers while stopping, so a proxy does not reuse it for a request cut off at the deadline', async () => {
    let draining = false;
    const stopping = createInProcessIngest(db.sql, db.url, {}, undefined, () => draining);
    expect((await postText(stopping, { from: '15550500014' })).headers.connection).not.toBe('close');
    draining = true;
    const answered = await postText(stopping, { from: '15550500015' });
    expect([answered.statusCode, answered.headers.connection]).toEqual([200, 'close']);
    const probe = await stopping.request({ method: 'GET', url: '/healthz' });
    expect(probe.headers.connection).toBe('close');
    await stopping.drain();
  });

  /** A Twilio form signed as Twilio signs it, for the URL it would have called. */
  function postSignedTwilio(params: FormParams) {
    return ingest.request({
      method: 'POST',
      url: TWILIO_WEBHOOK_PATH,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': twilioSignature(TWILIO_TOKEN, PUBLIC_BASE_URL + TWILIO_WEBHOOK_PATH, params),
      },
      payload: encodeForm(params),
    });
  }

  it('answers a Twilio form over 128 KiB 413 before its signature is computed, and takes one of the longest Twilio sends', async () => {
    const before = await counterValue(ingest.metrics, 'wagate_webhook_events_total', { source: 'twilio', outcome: 'too_large' });
    const forged = await ingest.request({
      method: 'POST',
      url: TWILIO_WEBHOOK_PATH,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': `${'A'.repeat(27)}=` },
      payload: `Body=${'x'.repeat(MAX_TWILIO_BODY_BYTES)}`,
    });
    expect([forged.statusCode, forged.body]).toEqual([413, `body exceeds ${MAX_TWILIO_BODY_BYTES} bytes`]);
    expect(await counterValue(ingest.metrics, 'wagate_webhook_events_total', { source: 'twilio', outcome: 'too_large' })).toBe(before + 1);
    // 1,600 emoji, each four bytes percent-encoded (12 characters), and ten media URLs: still taken.
    const longest = twilioText('🍕'.repeat(1600), 'whatsapp:+15550500019');
    for (let n = 0; n < 10; n += 1) longest.push([`MediaUrl${n}`, `https://api.twilio.com/2010-04-01/Accounts/AC${'0'.repeat(32)}/Messages/MM${'0'.repeat(32)}/Media/ME${'0'.repeat(32)}`]);
    expect(encodeForm(longest).length).toBeGreaterThan(19_000);
    expect((await postSignedTwilio(longest)).statusCode).toBe(200);
  });

  it('answers a Twilio message with empty TwiML after the commit', async () => {
    const params = twilioText('one coke', 'whatsapp:+15550500013');
    const sid = params.find(([name]) => name === 'MessageSid')?.[1] ?? params.find(([name]) => name === 'SmsMessageSid')![1];
    const reply = await postSignedTwilio(params);
    expect(reply.statusCode).toBe(200);
    expect(reply.body).toContain('<Response');
    expect(await rowOf(sid)).toMatchObject({ status: 'queued' });
  });

  it('refuses a Twilio form with more parameters than Twilio sends 401 before decoding it, even correctly signed, and records nothing', async () => {
    const sid = `SM${'f'.repeat(32)}`;
    const params: FormParams = [...twilioText('one coke', 'whatsapp:+15550500014', sid), ...Array.from({ length: 1000 }, (_, i): [string, string] => [`x${i}`, ''])];
    const before = await counterValue(ingest.metrics, 'wagate_webhook_events_total', { source: 'twilio', outcome: 'invalid_signature', reason: 'too_many_params' });
    const reply = await postSignedTwilio(params);
    expect(reply.statusCode).toBe(401);
    expect(await rowOf(sid)).toBeUndefined();
    expect(await counterValue(ingest.metrics, 'wagate_webhook_events_total', { source: 'twilio', outcome: 'invalid_signature', reason: 'too_many_params' })).toBe(before + 1);
    // The same form within the cap is taken.
    const within = [...twilioText('one coke', 'whatsapp:+15550500015', `SM${'e'.repeat(32)}`), ...params.slice(-900)];
    expect((await postSignedTwilio(within)).statusCode).toBe(200);
  });

  it('gives a path variant (a trailing slash), which express routes, the same checks and answer as the fast path', async () => {
    const id = uniqueWamid();
    const raw = JSON.stringify(metaTextEnvelope({ id, from: '15550500014', text: 'one coke' }));
    const url = `${META_WEBHOOK_PATH}/`;
    const unsigned = await ingest.request({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: raw });
    expect(unsigned.statusCode).toBe(401);
    const signed = await ingest.request({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': metaSignature(META_SECRET, raw) },
      payload: raw,
    });
    expect([signed.statusCode, signed.body]).toEqual([200, 'EVENT_RECEIVED']);
    expect(await rowOf(id)).toMatchObject({ status: 'queued' });
  });

  it('answers the Meta verification handshake with the challenge, and 403 to a wrong token', async () => {
    const ok = await ingest.request({
      method: 'GET',
      url: META_WEBHOOK_PATH,
      query: { 'hub.mode': 'subscribe', 'hub.verify_token': ingest.config.WHATSAPP_VERIFY_TOKEN!, 'hub.challenge': '1158201444' },
    });
    const wrong = await ingest.request({
      method: 'GET',
      url: META_WEBHOOK_PATH,
      query: { 'hub.mode': 'subscribe', 'hub.verify_token': 'not-the-token', 'hub.challenge': '1158201444' },
    });
    expect([ok.statusCode, ok.body]).toEqual([200, '1158201444']);
    expect(wrong.statusCode).toBe(403);
  });
});

