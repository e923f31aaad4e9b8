import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { networkInterfaces } from 'node:os';
import { MAIN_JS } from '../support/process';
import { waitFor } from '../support/wait';

/**
 * `wagate fake-provider`, as the README's demo starts it: it checks the credentials that a
 * worker in the same environment sends, as Meta and Twilio do, so that a worker set up with
 * another token is refused here as it would be there.
 */
const ACCOUNT_SID = 'AC' + '1'.repeat(32);
const running: ChildProcess[] = [];

afterAll(async () => {
  for (const child of running) {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
});

async function startFake(env: Record<string, string>, args: string[] = []): Promise<{ url: string; stdout: string }> {
  const child = spawn(process.execPath, [MAIN_JS, 'fake-provider', '--port', '0', ...args], {
    // No NODE_ENV: the command takes development's defaults, as `wagate dev` does.
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  running.push(child);
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const url = await waitFor('the fake to say where it listens', () => /listening on (http:\/\/\S+)/.exec(stdout)?.[1]);
  return { url, stdout };
}

const graph = (url: string, token: string) => fetch(`${url}/v21.0/106540352242922/messages`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  body: JSON.stringify({ messaging_product: 'whatsapp', to: '15551234567', type: 'text', text: { body: 'Your order is confirmed' } }),
});

const twilio = (url: string, token: string) => fetch(`${url}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: `Basic ${Buffer.from(`${ACCOUNT_SID}:${token}`).toString('base64')}` },
  body: new URLSearchParams({ To: 'whatsapp:+15551234567', From: 'whatsapp:+14155238886', Body: 'Your order is confirmed' }).toString(),
});

it('refuses the tokens a worker of this environment would not send, as the providers do, with no PUBLIC_BASE_URL needed', async () => {
  const fake = await startFake({ WHATSAPP_ACCESS_TOKEN: 'right-token', TWILIO_ACCOUNT_SID: ACCOUNT_SID, TWILIO_AUTH_TOKEN: 'right-auth,older-auth' });
  expect(fake.stdout).toContain('checking WHATSAPP_ACCESS_TOKEN, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN from this environment');
  const refused = await graph(fake.url, 'another-token');
  expect([refused.status, ((await refused.json()) as { error: { code: number } }).error.code]).toEqual([401, 190]);
  expect((await graph(fake.url, 'right-token')).status).toBe(200);
  // The worker authenticates with the first of the auth tokens, as Twilio's REST API takes one.
  expect((await twilio(fake.url, 'older-auth')).status).toBe(401);
  expect((await twilio(fake.url, 'right-auth')).status).toBe(201);
});

it('listens on every interface when told to, as a pod behind a Service must', async () => {
  const fake = await startFake({}, ['--host', '0.0.0.0']);
  const port = new URL(fake.url).port;
  expect(fake.stdout).toContain('(every interface)');
  // Reached through an address other than loopback's, as a Service's traffic arrives.
  const other = Object.values(networkInterfaces()).flat().find((entry) => entry && entry.family === 'IPv4' && !entry.internal);
  const address = other?.address ?? '127.0.0.2';
  expect((await graph(`http://${address}:${port}`, 'whatever')).status).toBe(200);
});

it('accepts any credentials where none are set', async () => {
  const fake = await startFake({});
  expect(fake.stdout).toContain('any credentials accepted');
  expect((await graph(fake.url, 'whatever')).status).toBe(200);
  expect((await twilio(fake.url, 'whatever')).status).toBe(201);
});
