import net from 'node:net';
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

  it('retry a refused connection: nothing reached the provider', async () => {
    const port = await closedPort();
    expect(await client(`http://127.0.0.1:${port}`)(meta)).toEqual({ kind: 'retry', error: 'connection failed (ECONNREFUSED)' });
  });

  it('mark a call unknown when the provider took it and never answered', async () => {
    fake.behave({ kind: 'hang' }, 1);
    expect(await client(fake.url, 300)(meta)).toMatchObject({ kind: 'unknown' });
  });

  it('retry 429 and 5xx with the Retry-After, and give up on a 4xx no retry can fix', async () => {
    fake.behave({ kind: 'status', status: 429, metaCode: 130429, retryAfterSeconds: 7 }, 1);
    expect(await client(fake.url)(meta)).toMatchObject({ kind: 'retry', retryAfterMs: 7000 });
    fake.behave({ kind: 'status', status: 503 }, 1);
    expect(await client(fake.url)(twilio)).toMatchObject({ kind: 'retry' });
    fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    expect(await client(fake.url)(meta)).toMatchObject({ kind: 'permanent', error: expect.stringContaining('code 131047') });
  });
});
