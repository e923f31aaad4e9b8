import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { startFakeProvider, type FakeProvider } from '../../src/dev/fake-provider';
import { createReplyClient, type ReplyClientOptions } from '../../src/replies/reply-clients';

const TOKEN = 'graph-token';
const SID = 'AC0123456789abcdef0123456789abcdef';
const TWILIO_TOKEN = 'twilio-token';
let fake: FakeProvider;

beforeAll(async () => {
  fake = await startFakeProvider({ metaAccessToken: TOKEN, twilioAccountSid: SID, twilioAuthToken: TWILIO_TOKEN });
});

afterAll(async () => {
  await fake.close();
});

function client(baseUrl: string, timeoutMs = 2000) {
  const options: ReplyClientOptions = {
    graphApiUrl: baseUrl,
    graphApiVersion: 'v21.0',
    accessToken: TOKEN,
    twilioApiUrl: baseUrl,
    twilioAccountSid: SID,
    twilioAuthToken: TWILIO_TOKEN,
    timeoutMs,
  };
  return createReplyClient(options);
}

const meta = { source: 'whatsapp' as const, to: '15550001111', from: '106540352242922', body: 'Order #1 confirmed' };
const twilio = { source: 'twilio' as const, to: 'whatsapp:+15550001111', from: 'whatsapp:+14155238886', body: 'Order #1 confirmed' };

/** A port that was free a moment ago: nothing listens there, so connecting is refused. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('reply clients', () => {
  it('send through the Graph API and Twilio REST and return the provider id', async () => {
    expect(await client(fake.url)(meta)).toMatchObject({ kind: 'sent', providerMessageId: expect.stringMatching(/^wamid\./) });
    expect(await client(fake.url)(twilio)).toMatchObject({ kind: 'sent', providerMessageId: expect.stringMatching(/^SM/) });
  });

  it('send the reply\'s reference: Meta\'s biz_opaque_callback_data, and Twilio\'s status callback URL\'s query, ahead of its #fragment', async () => {
    const reference = 'wagate:reply:7:0f8c5e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6';
    // As configured: a host in capitals stays so, since the ingest checks the signature against it as written.
    const callback = 'https://Shop.Example.com/api/v1/whatsapp-hardened/twilio/webhook#rc=3&rp=ct,rt,5xx';
    const send = createReplyClient({ graphApiUrl: fake.url, graphApiVersion: 'v21.0', accessToken: TOKEN, twilioApiUrl: fake.url,
      twilioAccountSid: SID, twilioAuthToken: TWILIO_TOKEN, twilioStatusCallback: callback, timeoutMs: 2000 });
    const sent = fake.calls().length;
    expect(await send({ ...meta, to: '15550001112', reference })).toMatchObject({ kind: 'sent' });
    expect(await send({ ...twilio, to: 'whatsapp:+15550001112', reference })).toMatchObject({ kind: 'sent' });
    const [metaCall, twilioCall] = fake.calls().slice(sent);
    expect(metaCall!.body).toMatchObject({ biz_opaque_callback_data: reference });
    expect((twilioCall!.body as Record<string, string>).StatusCallback).toBe(
      `https://Shop.Example.com/api/v1/whatsapp-hardened/twilio/webhook?wagate_reply=${encodeURIComponent(reference)}#rc=3&rp=ct,rt,5xx`);
  });

  it('refuse for good a call whose header cannot be sent (a token with a newline): nothing went out, and every try would fail the same', async () => {
    const before = fake.calls().length;
    const send = createReplyClient({ graphApiUrl: fake.url, graphApiVersion: 'v21.0', accessToken: `${TOKEN}\n`, twilioApiUrl: fake.url,
      twilioAccountSid: SID, twilioAuthToken: TWILIO_TOKEN, timeoutMs: 2000 });
    expect(await send(meta)).toMatchObject({ kind: 'permanent', error: expect.stringMatching(/^the request could not be built, so nothing was sent \(UND_ERR_INVALID_ARG/) });
    expect(fake.calls()).toHaveLength(before);
  });

  it('retry a refused connection: nothing reached the provider', async () => {
    const port = await closedPort();
    expect(await client(`http://127.0.0.1:${port}`)(meta)).toEqual({ kind: 'retry', error: 'connection failed (ECONNREFUSED)' });
  });

  it('retry a call whose TLS handshake failed: nothing reached the provider', async () => {
    const tls = path.join(__dirname, '..', 'fixtures', 'tls');
    let requests = 0;
    const untrusted = https.createServer({ key: readFileSync(path.join(tls, 'self-signed.key')), cert: readFileSync(path.join(tls, 'self-signed.crt')) }, (_req, res) => {
      requests += 1;
      res.end('{}');
    });
    await new Promise<void>((resolve) => untrusted.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = untrusted.address() as net.AddressInfo;
      expect(await client(`https://127.0.0.1:${port}`)(meta)).toEqual({ kind: 'retry', error: 'connection failed (DEPTH_ZERO_SELF_SIGNED_CERT)' });
      expect(requests).toBe(0);
      // A port that speaks plain HTTP, as a proxy set up without TLS does.
      const plain = new URL(fake.url);
      const before = fake.calls().length;
      expect(await client(`https://${plain.host}`)(twilio)).toEqual({ kind: 'retry', error: 'connection failed (ERR_SSL_WRONG_VERSION_NUMBER)' });
      expect(fake.calls()).toHaveLength(before);
    } finally {
      await new Promise<void>((resolve) => untrusted.close(() => resolve()));
    }
  });

  it('retry a connection reset during the TLS handshake, and call one reset after the request unknown', async () => {
    // A draining load balancer or an egress filter: the handshake's first bytes arrive, and the
    // connection is closed or reset before it completes. Nothing of the request went out.
    const requestsSeen: string[] = [];
    const cutter = (cut: (socket: net.Socket) => void) => net.createServer((socket) => socket.once('data', (bytes) => {
      requestsSeen.push(bytes.subarray(0, 4).toString('latin1'));
      cut(socket);
    }));
    const servers = [cutter((socket) => socket.destroy()), cutter((socket) => socket.resetAndDestroy())];
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))));
    try {
      for (const server of servers) {
        const { port } = server.address() as net.AddressInfo;
        expect(await client(`https://127.0.0.1:${port}`)(meta)).toMatchObject({ kind: 'retry', error: expect.stringMatching(/^connection failed \(ECONNRESET\)$/) });
        // Over plain HTTP the same cut comes after the request was written: it may have been taken.
        expect(await client(`http://127.0.0.1:${port}`)(twilio)).toMatchObject({ kind: 'unknown' });
      }
      // The TLS calls sent a handshake (0x16), the plain ones a request line.
      expect(requestsSeen.map((first) => (first.charCodeAt(0) === 0x16 ? 'tls' : first))).toEqual(['tls', 'POST', 'tls', 'POST']);
    } finally {
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    }
  });

  it('read at most 1 MiB of an answer: a body that never ends is cut, and its status judges the call; a Meta 4xx cut so is unknown', async () => {
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const endless = (status: number) => http.createServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      const more = () => {
        while (!res.destroyed && sent < 64 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
        if (!res.destroyed && sent < 64 * 1024 * 1024) res.once('drain', more);
      };
      more();
    });
    // A Meta 400 may carry code 1, "maybe taken": cut before its code, it is unknown. Twilio's
    // 4xx create nothing whatever their code: cut before it, whether for good is not known, so tried again.
    for (const [status, target, kind] of [[200, meta, 'unknown'], [400, meta, 'unknown'], [400, twilio, 'retry']] as const) {
      sent = 0;
      const server = endless(status);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = server.address() as net.AddressInfo;
        // Well inside the timeout: the cut, not the deadline, ends the call.
        const started = performance.now();
        expect(await client(`http://127.0.0.1:${port}`, 30_000)(target)).toMatchObject({ kind });
        expect(performance.now() - started).toBeLessThan(20_000);
        expect(sent).toBeLessThan(16 * 1024 * 1024);
      } finally {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    }
  });

  it('mark a Meta 4xx unknown when its body stalls past the deadline, and a Twilio one to try again', async () => {
    const stalled = http.createServer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.write('{"error":{"message":"An unknown error');
    });
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = stalled.address() as net.AddressInfo;
      // A deadline a busy machine meets for the connection and the headers; the body never comes.
      expect(await client(`http://127.0.0.1:${port}`, 3000)(meta)).toMatchObject({ kind: 'unknown', error: expect.stringContaining('Graph API 400') });
      expect(await client(`http://127.0.0.1:${port}`, 3000)(twilio)).toMatchObject({ kind: 'retry', error: expect.stringContaining('Twilio 400') });
    } finally {
      stalled.closeAllConnections();
      await new Promise<void>((resolve) => stalled.close(() => resolve()));
    }
  });

  it('take a proxy\'s JSON 503 for no word of the provider\'s: maybe taken, never resent as not taken', async () => {
    const bodies = {
      // Envoy's local reply in JSON (ESPv2, a mesh's JSON format) after the upstream reset, and Google's front end.
      twilio: { code: 14, message: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination' },
      meta: { error: { code: 503, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' } },
    };
    const proxy = http.createServer((req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url!.includes('/Messages.json') ? bodies.twilio : bodies.meta));
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = proxy.address() as net.AddressInfo;
      expect(await client(`http://127.0.0.1:${port}`)(meta)).toMatchObject({ kind: 'unknown', error: 'Graph API 503: The service is currently unavailable.' });
      expect(await client(`http://127.0.0.1:${port}`)(twilio)).toMatchObject({ kind: 'unknown', error: expect.stringMatching(/^Twilio 503: upstream connect error/) });
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it('mark a call unknown when the provider took it and never answered, saying it timed out', async () => {
    fake.behave({ kind: 'hang' }, 1);
    expect(await client(fake.url, 300)(meta)).toMatchObject({ kind: 'unknown', error: 'no answer from the provider (TimeoutError)' });
  });

  it('retry 429, with the Retry-After of a proxy in between, and give up on a 4xx no retry can fix', async () => {
    fake.behave({ kind: 'status', status: 429, metaCode: 130429 }, 1);
    const throttled = await client(fake.url)(meta);
    expect([throttled.kind, (throttled as { retryAfterMs?: number }).retryAfterMs]).toEqual(['retry', undefined]);
    fake.behave({ kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 7 }, 1);
    expect(await client(fake.url)(meta)).toMatchObject({ kind: 'retry', retryAfterMs: 7000 });
    fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    expect(await client(fake.url)(meta)).toMatchObject({ kind: 'permanent', error: expect.stringContaining('code 131047') });
  });

  type Behaviour = Parameters<FakeProvider['behave']>[0];
  const cases: [string, 'meta' | 'twilio', Behaviour, 'retry' | 'permanent' | 'unknown'][] = [
    ['Meta 503 (service unavailable: not taken)', 'meta', { kind: 'status', status: 503 }, 'retry'],
    ['Meta code 2 API Service, whatever the status', 'meta', { kind: 'status', status: 500, metaCode: 2 }, 'retry'],
    ['Meta is_transient on a 500', 'meta', { kind: 'status', status: 500, metaCode: 131000, isTransient: true }, 'retry'],
    ['Meta 130429 with HTTP 400', 'meta', { kind: 'status', status: 400, metaCode: 130429 }, 'retry'],
    ['Meta 131047 outside the 24-hour window', 'meta', { kind: 'status', status: 400, metaCode: 131047 }, 'permanent'],
    ['Meta 190 invalid token', 'meta', { kind: 'status', status: 401 }, 'permanent'],
    ['Meta 500 code 131000 (unknown error)', 'meta', { kind: 'status', status: 500 }, 'unknown'],
    ['Meta 502 without a body', 'meta', { kind: 'status', status: 502, bodyless: true }, 'unknown'],
    ['Meta 504 without a body', 'meta', { kind: 'status', status: 504, bodyless: true }, 'unknown'],
    ['Meta 500 carrying 190 invalid token: the code names the refusal', 'meta', { kind: 'status', status: 500, metaCode: 190 }, 'permanent'],
    ['Meta 500 carrying 131047 outside the 24-hour window', 'meta', { kind: 'status', status: 500, metaCode: 131047 }, 'permanent'],
    ['Meta 503 carrying 131047: the refusal, not the status', 'meta', { kind: 'status', status: 503, metaCode: 131047 }, 'permanent'],
    ['Meta 503 with a code it does not document: not taken', 'meta', { kind: 'status', status: 503, metaCode: 999999 }, 'retry'],
    ['a proxy\'s 503 on the way to Meta, without Graph\'s error: maybe taken', 'meta', { kind: 'status', status: 503, bodyless: true }, 'unknown'],
    ['a proxy\'s 429 on the way to Meta, without Graph\'s error: not taken', 'meta', { kind: 'status', status: 429, bodyless: true }, 'retry'],
    ['Meta 500 with a code it does not document', 'meta', { kind: 'status', status: 500, metaCode: 999999 }, 'unknown'],
    ['Meta 500 code 131057 account in maintenance mode', 'meta', { kind: 'status', status: 500, metaCode: 131057 }, 'retry'],
    ['Twilio 429 / 20429', 'twilio', { kind: 'status', status: 429 }, 'retry'],
    ['Twilio 503 / 20503', 'twilio', { kind: 'status', status: 503 }, 'retry'],
    ['Twilio 400 / 21611 the From number\'s queue is full', 'twilio', { kind: 'status', status: 400, twilioCode: 21611 }, 'retry'],
    ['Twilio 400 / 63017 rate limit exceeded', 'twilio', { kind: 'status', status: 400, twilioCode: 63017 }, 'retry'],
    ['Twilio 400 / 63018 rate limit exceeded for the channel', 'twilio', { kind: 'status', status: 400, twilioCode: 63018 }, 'retry'],
    ['Twilio 400 / 21211 invalid To', 'twilio', { kind: 'status', status: 400, twilioCode: 21211 }, 'permanent'],
    ['Twilio 500 / 20500', 'twilio', { kind: 'status', status: 500 }, 'unknown'],
    ['Twilio 502 without a body', 'twilio', { kind: 'status', status: 502, bodyless: true }, 'unknown'],
    ['a proxy\'s 503 on the way to Twilio, without Twilio\'s error: maybe taken', 'twilio', { kind: 'status', status: 503, bodyless: true }, 'unknown'],
  ];

  it.each(cases)('classify %s', async (_name, provider, behaviour, expected) => {
    fake.behave(behaviour, 1);
    expect(await client(fake.url)(provider === 'meta' ? meta : twilio)).toMatchObject({ kind: expected });
  });
});
