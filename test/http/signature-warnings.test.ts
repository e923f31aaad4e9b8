import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import { META_WEBHOOK_PATH } from '../../src/webhooks/meta';
import { metaTextEnvelope } from '../../src/webhooks/samples';
import { createLogger } from '../../src/telemetry/logger';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { createInProcessIngest, counterValue, type InProcessIngest } from '../support/in-process';
import { uniqueWamid } from '../support/webhooks';

/** A refused signature is logged once per source per minute, with its reason and a hint, never the signature. */
let db: TestDatabase;
let ingest: InProcessIngest;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  ingest = createInProcessIngest(db.sql, db.url, {}, createLogger('info', 'wagate-test', sink));
});

afterAll(async () => {
  jest.restoreAllMocks();
  await ingest.drain();
  await db.drop();
});

function postSignedWith(secret: string) {
  const body = JSON.stringify(metaTextEnvelope({ id: uniqueWamid(), from: '15550900001', text: 'one coke' }));
  const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
  return {
    signature,
    response: ingest.request({ method: 'POST', url: META_WEBHOOK_PATH, headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature }, payload: body }),
  };
}

const signatureWarnings = () => lines.filter((line) => line.msg?.toString().startsWith('refused a webhook signature'));

describe('refused signatures in the log', () => {
  it('logs the first refusal with its reason and a hint, counts the rest by reason, and logs again after a minute', async () => {
    const before = await counterValue(ingest.metrics, 'wagate_webhook_events_total', { source: 'whatsapp', outcome: 'invalid_signature', reason: 'no_match' });
    const sent = [postSignedWith('a-wrong-secret'), postSignedWith('a-wrong-secret'), postSignedWith('another-wrong-secret')];
    for (const { response } of sent) expect((await response).statusCode).toBe(401);

    expect(signatureWarnings()).toHaveLength(1);
    expect(signatureWarnings()[0]).toMatchObject({ level: 40, source: 'whatsapp', reason: 'no_match' });
    expect(String(signatureWarnings()[0]!.hint)).toMatch(/WHATSAPP_APP_SECRET/);
    const logged = JSON.stringify(lines);
    for (const { signature } of sent) expect(logged).not.toContain(signature.slice('sha256='.length));
    expect(logged).not.toContain('a-wrong-secret');
    expect(await counterValue(ingest.metrics, 'wagate_webhook_events_total', { source: 'whatsapp', outcome: 'invalid_signature', reason: 'no_match' })).toBe(before + 3);

    // A minute later the next refusal is logged again, so a wrong secret stays visible.
    const realNow = Date.now.bind(Date);
    jest.spyOn(Date, 'now').mockImplementation(() => realNow() + 61_000);
    expect((await ingest.request({ method: 'POST', url: META_WEBHOOK_PATH, headers: { 'content-type': 'application/json' }, payload: '{}' })).statusCode).toBe(401);
    expect(signatureWarnings()).toHaveLength(2);
    expect(signatureWarnings()[1]).toMatchObject({ reason: 'missing_header' });
  });
});
