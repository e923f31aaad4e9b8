import net from 'node:net';
import { startFakeProvider, type FakeProvider } from '../../src/dev/fake-provider';

const META_TOKEN = 'EAAG-test-token';
const ACCOUNT_SID = 'AC' + 'a'.repeat(32);
const AUTH_TOKEN = 'twilio-auth-token';
const PHONE_NUMBER_ID = '106540352242922';

interface SendOptions {
  token?: string | null;
  signal?: AbortSignal;
}

function metaText(to = '+1 555-123-4567', body = 'Your order #12 is confirmed'): Record<string, unknown> {
  return { messaging_product: 'whatsapp', recipient_type: 'individual', to, type: 'text', text: { body, preview_url: false } };
}

function sendMeta(fake: FakeProvider, body: unknown, options: SendOptions = {}): Promise<Response> {
  const token = options.token === undefined ? META_TOKEN : options.token;
  return fetch(`${fake.url}/v21.0/${PHONE_NUMBER_ID}/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token === null ? {} : { Authorization: `Bearer ${token}` }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: options.signal,
  });
}

function twilioForm(fields: Record<string, string> = {}): Record<string, string> {
  return { To: 'whatsapp:+15551234567', From: 'whatsapp:+14155238886', Body: 'Your order #12 is confirmed', ...fields };
}

function sendTwilio(fake: FakeProvider, form: Record<string, string>, options: SendOptions & { accountSid?: string } = {}): Promise<Response> {
  const token = options.token === undefined ? AUTH_TOKEN : options.token;
  const accountSid = options.accountSid ?? ACCOUNT_SID;
  const authorization: Record<string, string> = token === null ? {} : { Authorization: `Basic ${Buffer.from(`${ACCOUNT_SID}:${token}`).toString('base64')}` };
  return fetch(`${fake.url}/2010-04-01/Accounts/${accountSid}/Messages.json`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...authorization },
    body: new URLSearchParams(form).toString(),
    signal: options.signal,
  });
}

async function json(response: Response): Promise<any> {
  return response.json();
}

function control(fake: FakeProvider, path: string, body?: unknown): Promise<Response> {
  return fetch(`${fake.url}/_fake/${path}`, {
    method: body === undefined && path === 'calls' ? 'GET' : 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

let fake: FakeProvider;

beforeAll(async () => {
  fake = await startFakeProvider({ metaAccessToken: META_TOKEN, twilioAccountSid: ACCOUNT_SID, twilioAuthToken: AUTH_TOKEN });
});
afterEach(() => fake.reset());
afterAll(() => fake.close());

describe('Meta send message', () => {
  it("answers a text message with Meta's success shape and records the call", async () => {
    const response = await sendMeta(fake, metaText());
    const body = await json(response);

    expect(response.status).toBe(200);
    expect(body).toEqual({
      messaging_product: 'whatsapp',
      contacts: [{ input: '+1 555-123-4567', wa_id: '15551234567' }],
      messages: [{ id: expect.stringMatching(/^wamid\.[A-Za-z0-9+/]+=*$/) }],
    });
    const [call] = fake.calls();
    expect(call).toMatchObject({
      provider: 'meta',
      method: 'POST',
      path: `/v21.0/${PHONE_NUMBER_ID}/messages`,
      body: metaText(),
      status: 200,
      responseBody: body,
      providerMessageId: body.messages[0].id,
    });
    expect(call!.headers.authorization).toBe(`Bearer ${META_TOKEN}`);
  });

  it('gives each message a distinct wamid that carries the recipient, as Meta does', async () => {
    const ids = await Promise.all(Array.from({ length: 20 }, async () => (await json(await sendMeta(fake, metaText()))).messages[0].id as string));

    expect(new Set(ids).size).toBe(20);
    expect(Buffer.from(ids[0]!.slice('wamid.'.length), 'base64').toString('latin1')).toContain('15551234567');
  });

  it('takes a business-scoped user id in recipient, answering with user_id and no wa_id, and refuses one in to', async () => {
    const userId = 'US.13491208655302741918';
    const { to: _number, ...withoutTo } = metaText();
    const answered = await sendMeta(fake, { ...withoutTo, recipient: userId });
    expect(answered.status).toBe(200);
    expect((await json(answered)).contacts).toEqual([{ input: userId, user_id: userId }]);

    const refused = await sendMeta(fake, metaText(userId));
    expect(refused.status).toBe(400);
    expect((await json(refused)).error).toMatchObject({ code: 100, message: expect.stringContaining('recipient') });
  });

  it('accepts other message types and marks template messages accepted', async () => {
    const template = { messaging_product: 'whatsapp', to: '15551234567', type: 'template', template: { name: 'order_update', language: { code: 'en' } } };
    const image = { messaging_product: 'whatsapp', to: '15551234567', type: 'image', image: { link: 'https://example.com/pizza.jpg' } };

    expect((await json(await sendMeta(fake, template))).messages[0]).toEqual({ id: expect.any(String), message_status: 'accepted' });
    expect((await json(await sendMeta(fake, image))).messages[0]).toEqual({ id: expect.any(String) });
  });

  it('refuses a phone number id it does not know, as Graph does (code 100, subcode 33)', async () => {
    const strict = await startFakeProvider({ metaAccessToken: META_TOKEN, metaPhoneNumberIds: ['999'] });
    try {
      const response = await sendMeta(strict, metaText());
      expect(response.status).toBe(400);
      const { error } = await json(response);
      expect(error).toMatchObject({ type: 'GraphMethodException', code: 100, error_subcode: 33 });
      expect(error.message).toContain(`Object with ID '${PHONE_NUMBER_ID}' does not exist`);
    } finally {
      await strict.close();
    }
  });

  it('rejects a wrong token with 401 and Graph code 190', async () => {
    const response = await sendMeta(fake, metaText(), { token: 'not-the-token' });

    expect(response.status).toBe(401);
    expect(await json(response)).toEqual({
      error: { message: expect.stringContaining('Invalid OAuth access token'), type: 'OAuthException', code: 190, fbtrace_id: expect.any(String) },
    });
    expect(fake.calls()[0]).toMatchObject({ status: 401 });
    expect(fake.calls()[0]!.providerMessageId).toBeUndefined();
  });

  it('rejects a missing token with Graph code 104', async () => {
    const response = await sendMeta(fake, metaText(), { token: null });

    expect(response.status).toBe(400);
    expect((await json(response)).error).toMatchObject({ code: 104, type: 'OAuthException' });
  });

  it('takes the token from the access_token parameter too', async () => {
    const response = await fetch(`${fake.url}/v21.0/${PHONE_NUMBER_ID}/messages?access_token=${META_TOKEN}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(metaText()),
    });

    expect(response.status).toBe(200);
  });

  it.each([
    ['no messaging_product', { to: '15551234567', type: 'text', text: { body: 'hi' } }, 'messaging_product'],
    ['another messaging_product', { ...metaText(), messaging_product: 'sms' }, 'messaging_product'],
    ['no to', { messaging_product: 'whatsapp', type: 'text', text: { body: 'hi' } }, 'to'],
    ['an unknown type', { ...metaText(), type: 'fax' }, 'type'],
    ['a text without body', { ...metaText(), text: { preview_url: false } }, "text['body']"],
    ['a text over 4096 characters', { ...metaText(), text: { body: 'x'.repeat(4097) } }, "text['body'] must be at most 4096 characters"],
    ['callback data over 512 characters', { ...metaText(), biz_opaque_callback_data: 'x'.repeat(513) }, 'biz_opaque_callback_data must be a string of at most 512'],
    ['a body that is not JSON', '{"messaging_product":', 'messaging_product'],
  ])('rejects %s with 400 and code 100', async (_name, body, parameter) => {
    const response = await sendMeta(fake, body);
    const { error } = await json(response);

    expect(response.status).toBe(400);
    expect(error).toMatchObject({ type: 'OAuthException', code: 100, error_data: { messaging_product: 'whatsapp' } });
    expect(error.message).toMatch(/^\(#100\) /);
    expect(error.message).toContain(parameter);
  });
});

describe('Twilio create message', () => {
  it('answers 201 with the Message resource and records the form', async () => {
    const before = Date.now();
    const form = twilioForm({ StatusCallback: 'https://shop.example/status' });
    const response = await sendTwilio(fake, form);
    const message = await json(response);

    expect(response.status).toBe(201);
    expect(message).toMatchObject({
      sid: expect.stringMatching(/^SM[0-9a-f]{32}$/),
      account_sid: ACCOUNT_SID,
      to: form.To,
      from: form.From,
      body: form.Body,
      status: 'queued',
      num_segments: '1',
      num_media: '0',
      direction: 'outbound-api',
      api_version: '2010-04-01',
      date_sent: null,
      price: null,
      error_code: null,
      error_message: null,
    });
    expect(message.uri).toBe(`/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/${message.sid}.json`);
    expect(message.date_created).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$/);
    expect(Date.parse(message.date_created)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(fake.calls()[0]).toMatchObject({ provider: 'twilio', body: form, status: 201, providerMessageId: message.sid });
  });

  it('answers a Messaging Service send as accepted with no sender yet', async () => {
    const form = twilioForm({ MessagingServiceSid: 'MG' + 'b'.repeat(32) });
    delete form.From;
    const message = await json(await sendTwilio(fake, form));

    expect(message).toMatchObject({ status: 'accepted', from: null, messaging_service_sid: form.MessagingServiceSid, num_segments: '0' });
  });

  it('gives each message a distinct SID and counts SMS segments', async () => {
    const sids = await Promise.all(Array.from({ length: 20 }, async () => (await json(await sendTwilio(fake, twilioForm()))).sid as string));
    const long = await json(await sendTwilio(fake, twilioForm({ Body: 'x'.repeat(161) })));

    expect(new Set(sids).size).toBe(20);
    expect(long.num_segments).toBe('2');
  });

  it.each([
    ['a wrong auth token', { token: 'wrong' }],
    ['no credentials', { token: null }],
  ])('rejects %s with 401 and code 20003', async (_name, options) => {
    const response = await sendTwilio(fake, twilioForm(), options);

    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect(await json(response)).toEqual({ code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
  });

  it('answers 404 for another account than the credentials', async () => {
    const response = await sendTwilio(fake, twilioForm(), { accountSid: 'AC' + 'c'.repeat(32) });

    expect(response.status).toBe(404);
    expect((await json(response)).code).toBe(20404);
  });

  it.each([
    ['no To', 21604, { To: '' }],
    ['no From or MessagingServiceSid', 21603, { From: '' }],
    ['no Body', 21602, { Body: '' }],
    ['an invalid To', 21211, { To: 'whatsapp:12' }],
    ['a Body over 1600 characters', 21617, { Body: '🍕'.repeat(801) }],
    // A business number configured without its whatsapp: prefix: every confirmation refused for good.
    ['a From of another channel than To', 21910, { From: '+14155238886' }],
  ])('rejects %s with 400 and code %i', async (_name, code, fields) => {
    const response = await sendTwilio(fake, twilioForm(fields));

    expect(response.status).toBe(400);
    expect(await json(response)).toEqual({ code, message: expect.any(String), more_info: `https://www.twilio.com/docs/errors/${code}`, status: 400 });
  });

  it('cannot read a JSON body, as Twilio cannot', async () => {
    const response = await fetch(`${fake.url}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}` },
      body: JSON.stringify(twilioForm()),
    });

    expect((await json(response)).code).toBe(21604);
  });
});

describe('without configured credentials', () => {
  let open: FakeProvider;
  beforeAll(async () => {
    open = await startFakeProvider();
  });
  afterAll(() => open.close());

  it('accepts any token or none', async () => {
    expect((await sendMeta(open, metaText(), { token: 'anything' })).status).toBe(200);
    expect((await sendMeta(open, metaText(), { token: null })).status).toBe(200);
    expect((await sendTwilio(open, twilioForm(), { token: null, accountSid: 'AC' + 'd'.repeat(32) })).status).toBe(201);
  });
});

describe('behaviours', () => {
  it('answers a Meta-shaped error, without the Retry-After Meta does not send, then ok once the queue is used up', async () => {
    fake.behave({ kind: 'status', status: 429, metaCode: 130429 }, 1);

    const limited = await sendMeta(fake, metaText());
    const { error } = await json(limited);
    const next = await sendMeta(fake, metaText());

    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBeNull();
    expect(error).toMatchObject({ code: 130429, message: '(#130429) Rate limit hit', error_data: { messaging_product: 'whatsapp' } });
    expect(next.status).toBe(200);
  });

  it('answers a Twilio-shaped error with the code that goes with the status', async () => {
    fake.behave({ kind: 'status', status: 503 }, 1);

    const response = await sendTwilio(fake, twilioForm());

    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBeNull();
    expect(await json(response)).toMatchObject({ code: 20503, status: 503, more_info: 'https://www.twilio.com/docs/errors/20503' });
  });

  it('uses the given code and message, and applies them before credentials are checked', async () => {
    fake.behave({ kind: 'status', status: 400, metaCode: 131047, message: 'custom text' }, 1);

    const response = await sendMeta(fake, metaText(), { token: 'wrong' });

    expect(response.status).toBe(400);
    expect((await json(response)).error).toMatchObject({ code: 131047, message: 'custom text' });
  });

  it('plays queued behaviours in order, each for its count', async () => {
    fake.behave({ kind: 'status', status: 500 }, 2);
    fake.behave({ kind: 'status', status: 429 }, 1);

    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await sendMeta(fake, metaText())).status);

    expect(statuses).toEqual([500, 500, 429, 200]);
    expect(fake.calls().map((call) => call.status)).toEqual(statuses);
  });

  it('keeps an unbounded behaviour until another one replaces it', async () => {
    fake.behave({ kind: 'status', status: 503 });
    const during = [await sendMeta(fake, metaText()), await sendTwilio(fake, twilioForm()), await sendMeta(fake, metaText())];
    fake.behave({ kind: 'ok' });

    expect(during.map((response) => response.status)).toEqual([503, 503, 503]);
    expect((await sendMeta(fake, metaText())).status).toBe(200);
  });

  it('delays the answer by the given time', async () => {
    fake.behave({ kind: 'delay', ms: 300 }, 1);

    const started = Date.now();
    const pending = sendMeta(fake, metaText());
    const [call] = await fake.waitForCalls(1);
    expect(call!.status).toBe(0);
    const response = await pending;

    expect(response.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(call!.status).toBe(200);
  });

  it('hangs until the client gives up', async () => {
    fake.behave({ kind: 'hang' }, 1);

    const hung = sendTwilio(fake, twilioForm(), { signal: AbortSignal.timeout(200) });

    await expect(hung).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(fake.calls()[0]!.status).toBe(0);
    expect((await sendTwilio(fake, twilioForm())).status).toBe(201);
  });

  it('holds calls until release, then answers them ok', async () => {
    fake.behave({ kind: 'hold' }, 2);

    let firstSettled = false;
    const first = sendMeta(fake, metaText()).finally(() => (firstSettled = true));
    const second = sendTwilio(fake, twilioForm());
    const calls = await fake.waitForCalls(2);
    expect(firstSettled).toBe(false);
    expect(calls.map((call) => call.status)).toEqual([0, 0]);

    fake.release();

    expect((await first).status).toBe(200);
    expect((await second).status).toBe(201);
    expect(fake.calls().map((call) => call.status)).toEqual([200, 201]);
  });

  it('reset answers held calls, drops hung ones and forgets calls and behaviours', async () => {
    fake.behave({ kind: 'hold' }, 1);
    fake.behave({ kind: 'hang' });
    const held = sendMeta(fake, metaText());
    await fake.waitForCalls(1);
    const hung = sendMeta(fake, metaText());
    await fake.waitForCalls(2);
    expect(fake.calls().map((call) => call.status)).toEqual([0, 0]);

    fake.reset();

    expect((await held).status).toBe(200);
    await expect(hung).rejects.toThrow('fetch failed');
    expect(fake.calls()).toEqual([]);
    expect((await sendMeta(fake, metaText())).status).toBe(200);
  });

  it('waitForCalls fails with the count it saw', async () => {
    await sendMeta(fake, metaText());

    await expect(fake.waitForCalls(2, 100)).rejects.toThrow('received 1 of 2 calls within 100 ms');
  });

  it('behave rejects a behaviour that does not fit the schema', () => {
    expect(() => fake.behave({ kind: 'status', status: 200 })).toThrow();
  });

  it('sends Retry-After only as a proxy in between would, with no provider body', async () => {
    expect(() => fake.behave({ kind: 'status', status: 429, metaCode: 130429, retryAfterSeconds: 7 })).toThrow(/retryAfterSeconds needs bodyless: true/);
    fake.behave({ kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 7 }, 1);

    const limited = await sendMeta(fake, metaText());

    expect([limited.status, limited.headers.get('retry-after'), await limited.text()]).toEqual([429, '7', '']);
  });
});

describe('control API', () => {
  it('queues a behaviour and lists the calls', async () => {
    const behave = await control(fake, 'behave', { behaviour: { kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 3 }, count: 1 });
    const limited = await sendTwilio(fake, twilioForm());
    const sent = await sendMeta(fake, metaText());
    const calls = await json(await control(fake, 'calls'));

    expect(behave.status).toBe(204);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('3');
    expect(sent.status).toBe(200);
    expect(calls).toMatchObject([
      { provider: 'twilio', status: 429, responseBody: null },
      { provider: 'meta', status: 200, providerMessageId: expect.stringMatching(/^wamid\./) },
    ]);
  });

  it('rejects a malformed behaviour with 400 and queues nothing', async () => {
    const response = await control(fake, 'behave', { behaviour: { kind: 'explode' } });

    expect(response.status).toBe(400);
    expect((await json(response)).error).toContain('kind');
    expect((await sendMeta(fake, metaText())).status).toBe(200);
  });

  it('releases held calls', async () => {
    await control(fake, 'behave', { behaviour: { kind: 'hold' } });
    const held = sendMeta(fake, metaText());
    await fake.waitForCalls(1);

    expect((await control(fake, 'release')).status).toBe(204);
    expect((await held).status).toBe(200);
  });

  it('resets calls and behaviours', async () => {
    await control(fake, 'behave', { behaviour: { kind: 'status', status: 500 } });
    await sendMeta(fake, metaText());

    expect((await control(fake, 'reset')).status).toBe(204);
    expect(await json(await control(fake, 'calls'))).toEqual([]);
    expect((await sendMeta(fake, metaText())).status).toBe(200);
  });

  it('answers 400 to a request target that is no URL, and goes on answering', async () => {
    const { port } = new URL(fake.url);
    const answer = await new Promise<string>((resolve, reject) => {
      let received = '';
      const socket = net.connect(Number(port), '127.0.0.1', () => socket.end('GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
      socket.on('end', () => resolve(received));
      socket.on('error', reject);
    });

    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('cannot read the request target');
    expect((await sendMeta(fake, metaText())).status).toBe(200);
  });

  it('answers 404 for a path that neither provider has', async () => {
    const response = await fetch(`${fake.url}/v21.0/${PHONE_NUMBER_ID}/media`, { method: 'POST' });

    expect(response.status).toBe(404);
    expect(fake.calls()).toEqual([]);
  });
});
