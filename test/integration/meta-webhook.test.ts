import { metaContact, metaEnvelope, metaSignature, metaTextMessage } from '../../src/webhooks/samples';
import { META_WEBHOOK_PATH } from '../../src/webhooks/meta';
import { bodyOf, type QueueProbe } from '../support/amqp';
import type { TestDatabase } from '../support/database';
import { META_SECRET, startTestIngest, VERIFY_TOKEN, type TestIngest, useIngestSuite } from '../support/ingest';
import { postMeta, postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';
import { scrapeValue } from '../support/metrics';

let db: TestDatabase;
let ingest: TestIngest;
let probe: QueueProbe;

const suite = useIngestSuite();
beforeAll(() => ({ db, ingest, probe } = suite));

async function rowOf(messageId: string) {
  const [row] = await db.sql<{ status: string; duplicate_count: number; phone_number: string; sender_key: string; response_time_ms: number; raw_body: string | null; last_error: string | null }[]>`
    SELECT status, duplicate_count, phone_number, sender_key, response_time_ms, raw_body, last_error
    FROM webhook_messages WHERE webhook_source = 'whatsapp' AND message_id = ${messageId}`;
  return row;
}

/** The ingest's count of webhook events with this outcome; tests compare it before and after. */
const events = (outcome: string) => scrapeValue(ingest.metricsUrl, 'wagate_webhook_events_total', { source: 'whatsapp', outcome });
const answered = (code: string) => scrapeValue(ingest.metricsUrl, 'wagate_webhook_requests_total', { source: 'whatsapp', code });

describe('Meta webhook', () => {
  it('answers the verification handshake with the challenge only for the right token', async () => {
    const url = (token: string, mode = 'subscribe') =>
      `${ingest.baseUrl}${META_WEBHOOK_PATH}?hub.mode=${mode}&hub.verify_token=${token}&hub.challenge=1158201444`;
    const ok = await fetch(url(VERIFY_TOKEN));
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await ok.text()).toBe('1158201444');
    expect((await fetch(url('wrong-token'))).status).toBe(403);
    expect((await fetch(url(VERIFY_TOKEN, 'unsubscribe'))).status).toBe(403);
  });

  it('records a genuine message, queues it once with its id and traceparent, then answers 200', async () => {
    const id = uniqueWamid();
    const reply = await postMetaText(ingest.baseUrl, { id, from: '15551230001', text: '2x margherita' });
    expect(reply.status).toBe(200);
    // The 200 promises durability: the row exists the moment the answer arrives.
    const row = await rowOf(id);
    expect(row).toMatchObject({ status: 'queued', duplicate_count: 0, phone_number: '15551230001' });
    expect(row!.response_time_ms).toBeGreaterThanOrEqual(0);
    const messages = await waitFor('the message on the work queue', async () => {
      const got = await probe.drainWork(ingest.topology);
      return got.length > 0 ? got : null;
    });
    expect(messages).toHaveLength(1);
    const [message] = messages;
    expect(message!.properties.messageId).toBe(`whatsapp:${id}`);
    expect(message!.properties.deliveryMode).toBe(2);
    expect(String(message!.properties.headers?.traceparent)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    expect(bodyOf(message!)).toMatchObject({ source: 'whatsapp', messageId: id, from: '15551230001', type: 'text' });
    await waitFor('the outbox to empty', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0);
  });

  it('records and queues a sender\'s messages in the order one payload carries them, whatever their ids', async () => {
    const from = '15551230077';
    const run = uniqueWamid();
    // Each id sorts before the one sent ahead of it: the batch's lock order is the reverse of arrival.
    const texts = ['2 margherita', 'and a coke', 'cancel', 'status', 'menu', 'hello'];
    const ids = texts.map((_, index) => `${run}.${9 - index}`);
    const envelope = metaEnvelope([{ contacts: [metaContact({ from })], messages: ids.map((id, index) => metaTextMessage({ id, from, text: texts[index]! })) }]);
    expect((await postMeta(ingest.baseUrl, envelope)).status).toBe(200);
    // The sweep publishes a backlog in row order, so the rows must be numbered as they arrived.
    const rows = await db.sql<{ message_id: string }[]>`SELECT message_id FROM webhook_messages WHERE message_id = ANY(${ids}) ORDER BY id`;
    expect(rows.map((row) => row.message_id)).toEqual(ids);
    const queued = await waitFor('the sender\'s messages on the work queue', async () => {
      const got = (await probe.drainWork(ingest.topology)).filter((m) => bodyOf(m).from === from);
      return got.length > 0 ? got : null;
    });
    expect(queued.map((m) => m.properties.messageId)).toEqual(ids.map((id) => `whatsapp:${id}`));
  });

  it('counts a redelivered message as a duplicate and does not queue it again', async () => {
    const id = uniqueWamid();
    expect((await postMetaText(ingest.baseUrl, { id })).status).toBe(200);
    expect((await postMetaText(ingest.baseUrl, { id })).status).toBe(200);
    expect((await postMetaText(ingest.baseUrl, { id })).status).toBe(200);
    expect(await rowOf(id)).toMatchObject({ status: 'queued', duplicate_count: 2 });
    await waitFor('the outbox to empty', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0);
    const queued = (await probe.drainWork(ingest.topology)).filter((m) => m.properties.messageId === `whatsapp:${id}`);
    expect(queued).toHaveLength(1);
  });

  it('refuses a missing or forged signature with 401 and records nothing', async () => {
    const id = uniqueWamid();
    const body = metaEnvelope([{ messages: [metaTextMessage({ id, from: '1555', text: 'x' })] }]);
    const refused = (reason: string) =>
      scrapeValue(ingest.metricsUrl, 'wagate_webhook_events_total', { source: 'whatsapp', outcome: 'invalid_signature', reason });
    const [missingBefore, noMatchBefore] = [await refused('missing_header'), await refused('no_match')];
    expect((await postMeta(ingest.baseUrl, body, { signature: null })).status).toBe(401);
    expect((await postMeta(ingest.baseUrl, body, { secret: 'another-secret' })).status).toBe(401);
    expect(await rowOf(id)).toBeUndefined();
    // Counted by reason: a missing header, and a well-formed signature no configured secret makes.
    expect((await refused('missing_header')) - missingBefore).toBe(1);
    expect((await refused('no_match')) - noMatchBefore).toBe(1);
  });

  it('records a signed body that is not a valid envelope as malformed, with its raw bytes, and answers 200', async () => {
    const raw = '{"object":"whatsapp_business_account","entry":"not-a-list"}';
    const reply = await postMeta(ingest.baseUrl, raw);
    expect(reply.status).toBe(200);
    const [row] = await db.sql<{ message_id: string; status: string; raw_body: string; last_error: string }[]>`
      SELECT message_id, status, raw_body, last_error FROM webhook_messages WHERE raw_body = ${raw}`;
    expect(row).toMatchObject({ status: 'malformed', raw_body: raw });
    expect(row!.message_id).toMatch(/^malformed:/);
    expect(row!.last_error).toContain('entry');
    // The provider's retry of the same bytes is a duplicate, not a second row.
    expect((await postMeta(ingest.baseUrl, raw)).status).toBe(200);
    expect(await rowOf(row!.message_id)).toMatchObject({ duplicate_count: 1 });
    expect((await postMeta(ingest.baseUrl, 'not json at all')).status).toBe(200);
  });

  it('keeps the good messages of a signed body with more than 20 broken parts, queued each, and gives the broken parts one row', async () => {
    const ids = [uniqueWamid(), uniqueWamid()];
    const from = '15550300001';
    const envelope = metaEnvelope([{ contacts: [metaContact({ from })], messages: ids.map((id) => metaTextMessage({ id, from, text: '1 coke' })) }]);
    (envelope.entry as object[]).push(...Array.from({ length: 25 }, () => ({ id: 'x' })));
    const raw = JSON.stringify(envelope);
    expect((await postMeta(ingest.baseUrl, raw)).status).toBe(200);
    for (const id of ids) expect(await rowOf(id)).toMatchObject({ status: 'queued' });
    const broken = await db.sql<{ message_id: string; last_error: string }[]>`
      SELECT message_id, last_error FROM webhook_messages WHERE status = 'malformed' AND raw_body = ${raw}`;
    expect(broken).toHaveLength(1);
    expect(broken[0]!.last_error).toMatch(/^25 parts of the body are malformed/);
    await waitFor('both messages queued for the workers', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0);
  });

  it('records a signed message whose sender is longer than any address as malformed, and answers 200, not 503 for each retry', async () => {
    // 6 kB: past what the rate-limit index can hold as a key, so it must not reach it.
    const id = uniqueWamid();
    // One timestamp, so that the retry is the same bytes, as a provider's is: a malformed change
    // without a usable message id is known by the hash of its body.
    const timestamp = Math.floor(Date.now() / 1000);
    const post = () => postMetaText(ingest.baseUrl, { id, from: '1'.repeat(6_000), text: 'one coke', timestamp });
    expect((await post()).status).toBe(200);
    // The contact that names the sender is refused as well, so the whole change is the malformed item.
    const rows = () => db.sql<{ status: string; last_error: string; duplicate_count: number }[]>`
      SELECT status, last_error, duplicate_count FROM webhook_messages WHERE webhook_source = 'whatsapp' AND raw_body LIKE ${`%${id}%`}`;
    expect(await rows()).toEqual([{ status: 'malformed', last_error: expect.stringMatching(/wa_id|from/), duplicate_count: 0 }]);
    expect((await post()).status).toBe(200);
    expect(await rows()).toEqual([expect.objectContaining({ duplicate_count: 1 })]);
  });

  it('answers 200 for signed messages sent together with one Postgres cannot store (U+0000), and records every one', async () => {
    const genuine = [uniqueWamid(), uniqueWamid(), uniqueWamid()];
    const poison = uniqueWamid();
    const replies = await Promise.all([
      ...genuine.map((id) => postMetaText(ingest.baseUrl, { id, text: 'one coke' })),
      postMetaText(ingest.baseUrl, { id: poison, text: 'one\u0000coke' }),
    ]);
    expect(replies.map((reply) => reply.status)).toEqual([200, 200, 200, 200]);
    for (const id of genuine) expect((await rowOf(id))?.status).toBe('queued');
    const kept = await rowOf(poison);
    expect(kept).toMatchObject({ status: 'malformed', raw_body: expect.stringMatching(/^base64:/), last_error: expect.stringContaining('22P05') });
    // The provider's retry is a duplicate, not another failure.
    expect((await postMetaText(ingest.baseUrl, { id: poison, text: 'one\u0000coke' })).status).toBe(200);
    expect((await rowOf(poison))?.duplicate_count).toBe(1);
  });

  it('counts and logs the errors Meta reports in a change, and records nothing for them', async () => {
    const before = await events('provider_error');
    const body = metaEnvelope([
      {
        errors: [
          { code: 131000, title: 'Something went wrong', message: 'Something went wrong', error_data: { details: 'Message failed to send' } },
          { code: 368, title: 'Temporarily blocked for policies violations' },
        ],
      },
    ]);
    const rows = await db.sql`SELECT count(*)::int AS n FROM webhook_messages`;
    expect((await postMeta(ingest.baseUrl, body)).status).toBe(200);
    expect((await events('provider_error')) - before).toBe(2);
    expect((await db.sql`SELECT count(*)::int AS n FROM webhook_messages`)[0]!.n).toBe(rows[0]!.n);
  });

  it('answers 413 for a body over MAX_BODY_BYTES', async () => {
    const huge = JSON.stringify({ padding: 'x'.repeat(ingest.config.MAX_BODY_BYTES + 10) });
    const before = { tooLarge: await events('too_large'), answered413: await answered('413') };
    const reply = await postMeta(ingest.baseUrl, huge);
    expect(reply.status).toBe(413);
    expect(reply.body).toBe(`body exceeds ${ingest.config.MAX_BODY_BYTES} bytes`);
    expect((await events('too_large')) - before.tooLarge).toBe(1);
    // The per-status count is taken when the response has closed, just after the client has it.
    await waitFor('the 413 counted', async () => (await answered('413')) - before.answered413 === 1);
  });

  it('refuses a compressed body with 415: the signature covers the bytes as sent', async () => {
    const id = uniqueWamid();
    const body = metaEnvelope([{ messages: [metaTextMessage({ id, from: '1555', text: 'x' })] }]);
    const before = await events('bad_request');
    const reply = await postMeta(ingest.baseUrl, body, { headers: { 'Content-Encoding': 'gzip' } });
    expect(reply.status).toBe(415);
    expect(reply.body).toContain('gzip');
    expect(await rowOf(id)).toBeUndefined();
    expect((await events('bad_request')) - before).toBe(1);
  });

  it('serves path variants such as a trailing slash with the same checks', async () => {
    const id = uniqueWamid();
    const body = metaEnvelope([{ messages: [metaTextMessage({ id, from: '15551230009', text: 'one coke' })] }]);
    const path = `${META_WEBHOOK_PATH}/`;
    expect((await postMeta(ingest.baseUrl, body, { path, signature: null })).status).toBe(401);
    const reply = await postMeta(ingest.baseUrl, body, { path });
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('EVENT_RECEIVED');
    expect(await rowOf(id)).toMatchObject({ status: 'queued' });
  });

  it('judges each message of a payload on its own and records each status receipt once', async () => {
    const fresh = uniqueWamid();
    const known = uniqueWamid();
    const unknownType = uniqueWamid();
    const outbound = uniqueWamid();
    await postMetaText(ingest.baseUrl, { id: known });
    const now = Math.floor(Date.now() / 1000);
    const body = metaEnvelope([
      {
        contacts: [metaContact({ from: '15557770001', userId: 'US.13491208655302741918' })],
        messages: [
          metaTextMessage({ id: fresh, from: '15557770001', text: 'one coke' }),
          metaTextMessage({ id: known, from: '15557770001', text: 'again' }),
          { from: '15557770001', id: unknownType, timestamp: String(now), type: 'hologram', hologram: { beam: 1 } },
        ],
      },
      {
        statuses: [
          { id: outbound, status: 'delivered', timestamp: String(now), recipient_id: '15557770001' },
          { id: outbound, status: 'sent', timestamp: String(now - 1), recipient_id: '15557770001' },
        ],
      },
    ]);
    expect((await postMeta(ingest.baseUrl, body)).status).toBe(200);
    expect((await postMeta(ingest.baseUrl, body)).status).toBe(200);
    expect(await rowOf(fresh)).toMatchObject({ status: 'queued', duplicate_count: 1, sender_key: 'US.13491208655302741918' });
    expect(await rowOf(known)).toMatchObject({ status: 'queued', duplicate_count: 2 });
    expect(await rowOf(unknownType)).toMatchObject({ status: 'queued' });
    const receipts = await db.sql`SELECT status FROM message_statuses WHERE message_id = ${outbound} ORDER BY status`;
    expect(receipts.map((r) => r.status)).toEqual(['delivered', 'sent']);
    // Receipts are not messages: they never appear as duplicates in the message ledger.
    expect(await rowOf(outbound)).toBeUndefined();
  });
});

describe('Meta signatures on the wire', () => {
  const NEW_SECRET = 'rotated-app-secret';
  let rotated: TestIngest;

  beforeAll(async () => {
    // Mid-rotation: the new secret first, the old one still accepted.
    rotated = await startTestIngest(db.url, { WHATSAPP_APP_SECRET: `${NEW_SECRET},${META_SECRET}` });
    await rotated.broker.waitUntilConnected(10000);
  });

  afterAll(async () => {
    await rotated.stop();
    await probe.deleteTopology(rotated.topology);
  });

  const body = (id: string, text: string) => metaEnvelope([{ messages: [metaTextMessage({ id, from: '15551230100', text })] }]);
  const textOf = async (id: string) =>
    (await db.sql<{ text: string }[]>`SELECT payload -> 'content' -> 'text' ->> 'body' AS text FROM webhook_messages WHERE message_id = ${id}`)[0]?.text;

  it('accepts bodies signed with either secret during a rotation, and nothing else', async () => {
    const [withNew, withOld, forged] = [uniqueWamid(), uniqueWamid(), uniqueWamid()];
    expect((await postMeta(rotated.baseUrl, body(withNew, 'one coke'), { secret: NEW_SECRET })).status).toBe(200);
    expect((await postMeta(rotated.baseUrl, body(withOld, 'one coke'), { secret: META_SECRET })).status).toBe(200);
    expect((await postMeta(rotated.baseUrl, body(forged, 'one coke'), { secret: 'not-a-secret-we-know' })).status).toBe(401);
    // A signature for one body does not carry over to another.
    const signedOther = metaSignature(NEW_SECRET, JSON.stringify(body(uniqueWamid(), 'x')));
    expect((await postMeta(rotated.baseUrl, body(forged, 'one coke'), { signature: signedOther })).status).toBe(401);
    expect(await rowOf(withNew)).toMatchObject({ status: 'queued' });
    expect(await rowOf(withOld)).toMatchObject({ status: 'queued' });
    expect(await rowOf(forged)).toBeUndefined();
  });

  it('verifies the bytes as sent: literal UTF-8 and escaped unicode bodies, tampering refused', async () => {
    const [literal, escaped, tampered] = [uniqueWamid(), uniqueWamid(), uniqueWamid()];
    const literalBody = JSON.stringify(body(literal, 'dos cafés y una pizza 🍕'));
    // Meta escapes non-ASCII as \uXXXX; the signature covers those escapes, not the decoded text.
    const escapedBody = JSON.stringify(body(escaped, 'dos cafés y una pizza 🍕')).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    expect(escapedBody).toContain('\\u00e9');
    expect((await postMeta(rotated.baseUrl, literalBody, { secret: NEW_SECRET })).status).toBe(200);
    expect((await postMeta(rotated.baseUrl, escapedBody, { secret: NEW_SECRET })).status).toBe(200);
    expect(await textOf(literal)).toBe('dos cafés y una pizza 🍕');
    expect(await textOf(escaped)).toBe('dos cafés y una pizza 🍕');
    const signature = metaSignature(NEW_SECRET, JSON.stringify(body(tampered, '1 coke')));
    expect((await postMeta(rotated.baseUrl, JSON.stringify(body(tampered, '9 coke')), { signature })).status).toBe(401);
    expect(await rowOf(tampered)).toBeUndefined();
  });
});
