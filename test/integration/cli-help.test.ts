import { spawn } from 'node:child_process';
import net from 'node:net';
import { MAIN_JS } from '../support/process';

/** These commands fail before they reach Postgres or RabbitMQ, so no services are isolated here. */
function wagate(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A port nobody listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the command line', () => {
  it.each([['--help'], ['help'], ['-h']])('prints every command with `wagate %s` and exits 0', async (flag) => {
    const result = await wagate([flag]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^usage: wagate <command>/);
    expect(result.stdout).toMatch(/wait-ready/);
  });

  it('prints one command\'s usage with `wagate send --help` and `wagate help send`, exit 0', async () => {
    for (const args of [['send', '--help'], ['help', 'send']]) {
      const result = await wagate(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^usage: wagate send \[--provider meta\|twilio\]/);
    }
  });

  it('exits 2 with the command\'s usage on an unknown option, a missing argument or an unknown command', async () => {
    const unknownOption = await wagate(['send', '--bogus'], { WHATSAPP_APP_SECRET: 'x' });
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toMatch(/--bogus/);
    expect(unknownOption.stderr).toMatch(/usage: wagate send /);
    const missing = await wagate(['products']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/usage: wagate products import FILE\.csv/);
    const unknown = await wagate(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
    expect((await wagate([])).code).toBe(2);
  });

  it('names the missing catalog file and what to check, without a raw ENOENT', async () => {
    const result = await wagate(['products', 'import', 'nope.csv']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot read the catalog \/.*nope\.csv: there is no such file; check the path/);
    expect(result.stderr).not.toMatch(/ENOENT/);
  });

  it('says which URL send could not reach, why, and what to do', async () => {
    const port = await closedPort();
    const result = await wagate(['send', '--url', `http://127.0.0.1:${port}`], { WHATSAPP_APP_SECRET: 'devsecret' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`could not reach the gateway at http://127.0.0.1:${port}/api/v1/whatsapp-hardened/webhook (ECONNREFUSED`);
    expect(result.stderr).toMatch(/start it \(scripts\/dev\.sh\)/);
  });

  it('wait-ready gives up after its timeout naming the URL', async () => {
    const port = await closedPort();
    const result = await wagate(['wait-ready', '--url', `http://127.0.0.1:${port}`, '--timeout', '1']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`http://127.0.0.1:${port}/readyz was not ready after 1 s (ECONNREFUSED`);
  });
});
