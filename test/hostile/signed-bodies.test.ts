import fc from 'fast-check';
import { META_WEBHOOK_PATH } from '../../src/webhooks/meta';
import { encodeForm, metaSignature, twilioSignature } from '../../src/webhooks/samples';
import { TWILIO_WEBHOOK_PATH } from '../../src/webhooks/twilio';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { createInProcessIngest, type InProcessIngest } from '../support/in-process';
import { META_SECRET, TWILIO_TOKEN } from '../support/ingest';
import { hostileForm, hostileJson, mutatedMetaEnvelope } from './arbitraries';

/**
 * Hostile bodies through the ingest's own request listener, with the real recorder and
 * Postgres: a signed body is answered 200 and recorded, never 5xx; an unsigned one is
 * answered 401 and never reaches the parser, so nothing is recorded. Fewer runs than the
 * pure parser properties, since each one is a database commit (HOSTILE_HTTP_RUNS raises it).
 */
const RUNS = Number(process.env.HOSTILE_HTTP_RUNS ?? 40);
const PUBLIC_BASE_URL = 'https://gateway.example.com';

let db: TestDatabase;
let ingest: InProcessIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  ingest = createInProcessIngest(db.sql, db.url, { PUBLIC_BASE_URL, RATE_LIMIT_MAX_REQUESTS: '1000000' });
});

afterAll(async () => {
  await ingest.drain();
  await db.drop();
});

const rowCount = async () => (await db.sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM webhook_messages`)[0]!.n;

function postMeta(body: Buffer, signature: string | undefined) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (signature !== undefined) headers['x-hub-signature-256'] = signature;
  return ingest.request({ method: 'POST', url: META_WEBHOOK_PATH, headers, payload: body });
}

function postTwilio(pairs: [string, string][], signature: string | undefined) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (signature !== undefined) headers['x-twilio-signature'] = signature;
  return ingest.request({ method: 'POST', url: TWILIO_WEBHOOK_PATH, headers, payload: encodeForm(pairs) });
}

/** Anything a client might send to the Meta path: random bytes, JSON, or a real envelope gone wrong. */
const metaBodies = fc.oneof(
  fc.uint8Array({ maxLength: 1024 }).map((bytes) => Buffer.from(bytes)),
  hostileJson.map((value) => Buffer.from(JSON.stringify(value) ?? 'null')),
  mutatedMetaEnvelope.map((body) => Buffer.from(body)),
);

describe('signed hostile bodies', () => {
  it('Meta: every signed body is answered 200, never 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(metaBodies, async (body) => {
        const reply = await postMeta(body, metaSignature(META_SECRET, body));
        expect(reply.statusCode).toBe(200);
      }),
      { numRuns: RUNS },
    );
  });

  it('Meta: a signed body with U+0000, lone surrogates and RTL marks in its text is answered 200', async () => {
    for (const text of ['\\u0000', '\\ud800', '\\u202e\\u200f abc', '\u202e\u200f abc']) {
      const body = Buffer.from(
        `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"1"},"messages":[{"from":"15550001111","id":"wamid.nul${Math.random()}","timestamp":"${Math.floor(Date.now() / 1000)}","type":"text","text":{"body":"${text}"}}]}}]}]}`,
      );
      const reply = await postMeta(body, metaSignature(META_SECRET, body));
      expect({ text, status: reply.statusCode }).toEqual({ text, status: 200 });
    }
  });

  it('Twilio: every signed form is answered 200', async () => {
    await fc.assert(
      fc.asyncProperty(hostileForm, async (pairs) => {
        const decoded = [...new URLSearchParams(encodeForm(pairs))];
        const signature = twilioSignature(TWILIO_TOKEN, PUBLIC_BASE_URL + TWILIO_WEBHOOK_PATH, decoded);
        const reply = await postTwilio(pairs, signature);
        expect(reply.statusCode).toBe(200);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('unsigned hostile bodies', () => {
  it('are answered 401 and never reach the parser: nothing is recorded', async () => {
    const before = await rowCount();
    await fc.assert(
      fc.asyncProperty(metaBodies, fc.option(fc.string({ maxLength: 80 })), hostileForm, async (body, signature, pairs) => {
        expect((await postMeta(body, signature ?? undefined)).statusCode).toBe(401);
        expect((await postTwilio(pairs, signature ?? undefined)).statusCode).toBe(401);
      }),
      { numRuns: RUNS },
    );
    expect(await rowCount()).toBe(before);
  });
});
