import { createHash, randomUUID } from 'node:crypto';
import { encodeForm, twilioSignature } from '../../src/webhooks/samples';
import { EMPTY_TWIML, TWILIO_WEBHOOK_PATH } from '../../src/webhooks/twilio';
import { scrapeValue } from '../support/metrics';
import type { QueueProbe } from '../support/amqp';
import type { TestDatabase } from '../support/database';
import { TWILIO_TOKEN, type TestIngest, useIngestSuite } from '../support/ingest';
import { signFor } from '../support/twilio-sign';
import { postTwilio, twilioText } from '../support/webhooks';
import { waitFor } from '../support/wait';

const PUBLIC_BASE_URL = 'https://shop.example.com';
let db: TestDatabase;
let ingest: TestIngest;
let probe: QueueProbe;

const suite = useIngestSuite({
    PUBLIC_BASE_URL,
    TWILIO_AUTH_TOKEN: `${TWILIO_TOKEN},previous-token`,
    TWILIO_WEBHOOK_SHARED_KEY: 'shared-current,shared-previous',
  });
beforeAll(() => ({ db, ingest, probe } = suite));

const statusOf = async (sid: string) =>
  (await db.sql<{ status: string; duplicate_count: number }[]>`
    SELECT status, duplicate_count FROM webhook_messages WHERE webhook_source = 'twilio' AND message_id = ${sid}`)[0];

describe('Twilio webhook', () => {
  it('records a signed form post, queues it, and answers with empty TwiML', async () => {
    const params = twilioText('1 pizza margherita');
    const sid = params.find(([name]) => name === 'MessageSid')![1];
    const reply = await postTwilio(ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL });
    expect(reply.status).toBe(200);
    expect(reply.headers.get('content-type')).toMatch(/^text\/xml/);
    expect(reply.body).toBe(EMPTY_TWIML);
    expect(await statusOf(sid)).toEqual({ status: 'queued', duplicate_count: 0 });
    const queued = await waitFor('the queued Twilio message', async () => {
      const got = await probe.drainWork(ingest.topology);
      return got.length > 0 ? got : null;
    });
    expect(queued.map((m) => m.properties.messageId)).toEqual([`twilio:${sid}`]);
  });

  it('records a signed post whose From is longer than any address as malformed, and answers 200', async () => {
    const params = twilioText('1 pizza margherita', `whatsapp:+${'1'.repeat(6_000)}`);
    const sid = params.find(([name]) => name === 'MessageSid')![1];
    const reply = await postTwilio(ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL });
    expect(reply.status).toBe(200);
    const [row] = await db.sql<{ status: string; last_error: string }[]>`
      SELECT status, last_error FROM webhook_messages WHERE webhook_source = 'twilio' AND message_id = ${sid}`;
    expect(row).toMatchObject({ status: 'malformed', last_error: expect.stringContaining('From') });
  });

  describe('a JSON post, signed through its bodySHA256', () => {
    /** As Twilio sends one: the body's SHA-256 in the URL, the URL alone signed. */
    async function postJson(body: string, options: { signedBody?: string; query?: string } = {}) {
      const pathAndQuery = `${TWILIO_WEBHOOK_PATH}?${options.query ?? ''}bodySHA256=${createHash('sha256').update(options.signedBody ?? body).digest('hex')}`;
      const signature = twilioSignature(TWILIO_TOKEN, PUBLIC_BASE_URL + pathAndQuery, []);
      const response = await fetch(ingest.baseUrl + pathAndQuery, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Twilio-Signature': signature },
        body,
      });
      return { status: response.status, body: await response.text() };
    }

    it('records and queues a message, and answers with empty TwiML', async () => {
      const sid = `SM${randomUUID().replace(/-/g, '')}`;
      // A form would carry each "&" of the text percent-encoded; JSON carries them as they are.
      const text = `1 pizza margherita ${'&'.repeat(1_500)}`;
      const reply = await postJson(JSON.stringify({ MessageSid: sid, From: 'whatsapp:+15550002223', To: 'whatsapp:+14155238886', Body: text, NumMedia: 0 }), { query: 'tenant=42&' });
      expect(reply).toEqual({ status: 200, body: EMPTY_TWIML });
      expect(await statusOf(sid)).toEqual({ status: 'queued', duplicate_count: 0 });
      const [row] = await db.sql<{ payload: { content: Record<string, string> } }[]>`SELECT payload FROM webhook_messages WHERE message_id = ${sid}`;
      expect(row!.payload.content).toMatchObject({ Body: text, NumMedia: '0' });
    });

    it('keeps a signed body that is not a JSON object as malformed', async () => {
      const body = '["not", "an object"]';
      expect((await postJson(body)).status).toBe(200);
      const [row] = await db.sql<{ status: string; last_error: string; raw_body: string }[]>`
        SELECT status, last_error, raw_body FROM webhook_messages WHERE webhook_source = 'twilio' AND raw_body = ${body}`;
      expect(row).toMatchObject({ status: 'malformed', last_error: expect.stringContaining('not an object') });
    });

    it('keeps a signed body that does not parse as malformed, with none of its text in the error', async () => {
      // The parser's own message quotes the text ("Unexpected token 'c', "{"Body": call me +1"..."),
      // and last_error is not cleared with the personal data.
      const body = '{"Body": call me +15550002229';
      expect((await postJson(body)).status).toBe(200);
      const [row] = await db.sql<{ status: string; last_error: string }[]>`
        SELECT status, last_error FROM webhook_messages WHERE webhook_source = 'twilio' AND raw_body = ${body}`;
      expect(row).toEqual({ status: 'malformed', last_error: 'a JSON body (bodySHA256) that does not parse' });
    });

    it('reads a bodySHA256 only as the URL\'s last parameter, where Twilio appends it', async () => {
      const sid = `SM${randomUUID().replace(/-/g, '')}`;
      const body = JSON.stringify({ MessageSid: sid, From: 'whatsapp:+15550002225', To: 'whatsapp:+14155238886', Body: '1 coke' });
      // Signed as a JSON post would be, the hash followed by another parameter: checked as a form, it fails.
      const pathAndQuery = `${TWILIO_WEBHOOK_PATH}?bodySHA256=${createHash('sha256').update(body).digest('hex')}&tenant=42`;
      const response = await fetch(ingest.baseUrl + pathAndQuery, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Twilio-Signature': twilioSignature(TWILIO_TOKEN, PUBLIC_BASE_URL + pathAndQuery, []) },
        body,
      });
      expect(response.status).toBe(401);
      expect(await statusOf(sid)).toBeUndefined();
    });

    it('refuses, and records nothing of, a body that is not the one hashed in the signed URL', async () => {
      const sid = `SM${randomUUID().replace(/-/g, '')}`;
      const signed = JSON.stringify({ MessageSid: sid, From: 'whatsapp:+15550002224', To: 'whatsapp:+14155238886', Body: '1 coke' });
      const reply = await postJson(signed.replace('1 coke', '9 coke'), { signedBody: signed });
      expect(reply.status).toBe(401);
      expect(await statusOf(sid)).toBeUndefined();
    });
  });

  it('checks the signature over the public URL with its query string', async () => {
    const params = twilioText('hola');
    const sid = params.find(([name]) => name === 'MessageSid')![1];
    const reply = await postTwilio(ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL, query: '?tenant=42' });
    expect(reply.status).toBe(200);
    const other = twilioText('hola');
    const signedWithoutQuery = await postTwilio(ingest.baseUrl, other, {
      publicBaseUrl: PUBLIC_BASE_URL,
      query: '?tenant=42',
      signature: signFor(other, PUBLIC_BASE_URL),
    });
    expect(signedWithoutQuery.status).toBe(401);
    expect(await statusOf(sid)).toMatchObject({ status: 'queued' });
  });

  it('accepts a signature computed over the URL with an explicit :443', async () => {
    const reply = await postTwilio(ingest.baseUrl, twilioText('with port'), { publicBaseUrl: 'https://shop.example.com:443' });
    expect(reply.status).toBe(200);
  });

  it('accepts the second token of a rotation and refuses a tampered form', async () => {
    expect((await postTwilio(ingest.baseUrl, twilioText('rotated'), { publicBaseUrl: PUBLIC_BASE_URL, token: 'previous-token' })).status).toBe(200);
    const params = twilioText('original');
    const signature = signFor(params, PUBLIC_BASE_URL);
    const tampered = params.map(([name, value]) => [name, name === 'Body' ? 'tampered' : value] as [string, string]);
    const reply = await postTwilio(ingest.baseUrl, tampered, { publicBaseUrl: PUBLIC_BASE_URL, signature });
    expect(reply.status).toBe(401);
    expect((await postTwilio(ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL, signature: null })).status).toBe(401);
  });

  it('records a post that a Webhook Rule signed with a shared key, in either algorithm and with either key of a rotation', async () => {
    const sha256 = twilioText('2 pizza margherita');
    const sha1 = twilioText('1 coke');
    const signedBy = (algorithm: 'HMAC_SHA1' | 'HMAC_SHA256', secret: string) => ({ publicBaseUrl: PUBLIC_BASE_URL, sharedKey: { secret, algorithm } });
    expect((await postTwilio(ingest.baseUrl, sha256, signedBy('HMAC_SHA256', 'shared-current'))).status).toBe(200);
    expect((await postTwilio(ingest.baseUrl, sha1, signedBy('HMAC_SHA1', 'shared-previous'))).status).toBe(200);
    for (const params of [sha256, sha1]) expect(await statusOf(params.find(([name]) => name === 'MessageSid')![1])).toMatchObject({ status: 'queued' });
  });

  it('refuses, and records nothing of, a shared-key post signed by anything but a shared key, or in an algorithm Twilio does not use', async () => {
    const refusals = (reason: string) => scrapeValue(ingest.metricsUrl, 'wagate_webhook_events_total', { source: 'twilio', outcome: 'invalid_signature', reason });
    const [noMatch, badFormat] = [await refusals('no_match'), await refusals('bad_format')];
    const byToken = twilioText('signed by the auth token');
    const reply = await postTwilio(ingest.baseUrl, byToken, { publicBaseUrl: PUBLIC_BASE_URL, sharedKey: { secret: 'shared-current', algorithm: 'HMAC_SHA1' }, signature: signFor(byToken, PUBLIC_BASE_URL) });
    expect(reply.status).toBe(401);
    const unknownAlgorithm = twilioText('signed in sha512');
    const headers = {
      'Content-Type': 'application/x-www-form-urlencoded',
      'X-Twilio-Signature': signFor(unknownAlgorithm, PUBLIC_BASE_URL),
      'X-Twilio-Webhooks-Signature-Settings': 'key=KS1,algorithm=HMAC_SHA512',
    };
    const refused = await fetch(ingest.baseUrl + TWILIO_WEBHOOK_PATH, { method: 'POST', headers, body: encodeForm(unknownAlgorithm) });
    expect(refused.status).toBe(401);
    expect(await refusals('no_match')).toBe(noMatch + 1);
    expect(await refusals('bad_format')).toBe(badFormat + 1);
    for (const params of [byToken, unknownAlgorithm]) expect(await statusOf(params.find(([name]) => name === 'MessageSid')![1])).toBeUndefined();
  });

  it('treats a replayed Twilio post as a duplicate, since Twilio signs no timestamp', async () => {
    const params = twilioText('replay me');
    const sid = params.find(([name]) => name === 'MessageSid')![1];
    await postTwilio(ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL });
    expect((await postTwilio(ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    expect(await statusOf(sid)).toEqual({ status: 'queued', duplicate_count: 1 });
  });

  it('records status callbacks as receipts, once each', async () => {
    const sid = 'SM0123456789abcdef0123456789abcdef';
    const callback = (status: string): [string, string][] => [
      ['MessageSid', sid],
      ['MessageStatus', status],
      ['To', 'whatsapp:+15550002222'],
      ['From', 'whatsapp:+14155238886'],
      ['AccountSid', 'AC00000000000000000000000000000000'],
    ];
    for (const status of ['sent', 'delivered', 'delivered', 'read']) {
      expect((await postTwilio(ingest.baseUrl, callback(status), { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    }
    const rows = await db.sql`SELECT status FROM message_statuses WHERE webhook_source = 'twilio' AND message_id = ${sid} ORDER BY id`;
    expect(rows.map((r) => r.status)).toEqual(['sent', 'delivered', 'read']);
    expect(await statusOf(sid)).toBeUndefined();
  });
});

/**
 * Twilio signs a form's parameters run together, name then value, sorted, with nothing between
 * them: the signed bytes of one genuine form, split anew, still verify. Whoever captured one
 * could post it again as another message id, or turn a receipt into a message.
 */
describe('Twilio forms split anew from a genuine one\'s signed bytes', () => {
  const url = PUBLIC_BASE_URL + TWILIO_WEBHOOK_PATH;
  const replace = (params: [string, string][], name: string, by: [string, string][]) => params.flatMap((param) => (param[0] === name ? by : [param]));
  const rowsFrom = (from: string) => db.sql<{ status: string; last_error: string | null; duplicate_count: number }[]>`
    SELECT status, last_error, duplicate_count FROM webhook_messages WHERE webhook_source = 'twilio' AND phone_number = ${from} ORDER BY id`;

  it('keep a message once: a MessageSid that swallowed the parameters after it is kept as malformed, not queued as a second message', async () => {
    const from = 'whatsapp:+15550002301';
    const genuine = twilioText('2 margherita', from);
    const sid = genuine.find(([name]) => name === 'MessageSid')![1];
    const signature = twilioSignature(TWILIO_TOKEN, url, genuine);
    expect((await postTwilio(ingest.baseUrl, genuine, { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    const once = replace(replace(genuine, 'MessageType', []), 'MessageSid', [['MessageSid', `${sid}MessageTypetext`]]);
    const twice = replace(replace(once, 'NumMedia', []), 'MessageSid', [['MessageSid', `${sid}MessageTypetextNumMedia0`]]);
    // A pair given twice is signed once, and the order of the pairs is not signed at all.
    const repeated = [...genuine, genuine.find(([name]) => name === 'Body')!].reverse();
    for (const forged of [once, twice, repeated]) {
      // The same signature verifies: only the reading of the form can tell.
      expect(twilioSignature(TWILIO_TOKEN, url, forged)).toBe(signature);
      expect((await postTwilio(ingest.baseUrl, forged, { publicBaseUrl: PUBLIC_BASE_URL, signature })).status).toBe(200);
    }
    // One row for what was signed, whatever its encoding: each encoding used to add a row of its
    // own, and a captured form posted in endless encodings filled the ledger with errors.
    expect(await rowsFrom(from)).toEqual([
      { status: 'queued', last_error: null, duplicate_count: 0 },
      { status: 'malformed', last_error: expect.stringContaining('MessageSid is not a Twilio message id'), duplicate_count: 2 },
    ]);
    // Other tests' messages may wait in the queues too: these are the ones that share its id.
    const queued = await waitFor('the queued message', async () => {
      const got = (await probe.drainWork(ingest.topology)).filter((message) => String(message.properties.messageId).startsWith(`twilio:${sid}`));
      return got.length > 0 ? got : null;
    });
    expect(queued.map((message) => message.properties.messageId)).toEqual([`twilio:${sid}`]);
  });

  it('keep a receipt a receipt: one whose statuses were split off is kept as malformed, not queued as a message from the shop\'s number', async () => {
    const shop = 'whatsapp:+15550002302';
    const replySid = `SM${randomUUID().replace(/-/g, '')}`;
    const receipt: [string, string][] = [['ApiVersion', '2010-04-01'], ['MessageStatus', 'delivered'], ['SmsSid', replySid], ['SmsStatus', 'delivered'],
      ['To', 'whatsapp:+15550002303'], ['From', shop], ['MessageSid', replySid], ['AccountSid', 'AC00000000000000000000000000000000']];
    const signature = twilioSignature(TWILIO_TOKEN, url, receipt);
    const forged = replace(replace(receipt, 'MessageStatus', [['MessageSt', 'atusdelivered']]), 'SmsStatus', [['SmsSt', 'atusdelivered']]);
    expect(twilioSignature(TWILIO_TOKEN, url, forged)).toBe(signature);
    expect((await postTwilio(ingest.baseUrl, forged, { publicBaseUrl: PUBLIC_BASE_URL, signature })).status).toBe(200);
    expect(await rowsFrom(shop)).toEqual([{ status: 'malformed', last_error: expect.stringContaining('parameter MessageSt is a piece of MessageStatus'), duplicate_count: 0 }]);
    expect(await db.sql`SELECT 1 FROM webhook_messages WHERE webhook_source = 'twilio' AND message_id = ${replySid}`).toEqual([]);
    expect(await db.sql`SELECT 1 FROM webhook_rate_limits WHERE phone_number = ${shop}`).toEqual([]);
    expect((await probe.drainWork(ingest.topology)).filter((message) => message.properties.messageId === `twilio:${replySid}`)).toEqual([]);
  });
});
