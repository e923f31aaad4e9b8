import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { ADMIN_DATABASE_URL, createTestDatabase, withDatabase, withPort } from '../support/database';
import { startTestIngest } from '../support/ingest';
import { MAIN_JS } from '../support/process';

/** The admin URL with another user and password, to be refused by the real Postgres. */
function withDatabaseUser(user: string, password: string): string {
  const url = new URL(ADMIN_DATABASE_URL);
  url.username = user;
  url.password = password;
  return url.toString();
}

/** These commands fail before they change anything in Postgres or RabbitMQ, so no services are isolated here. */
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

  it('names the actions of a command given none or a wrong one, and refuses a port or a reply id that is not a number', async () => {
    const none = await wagate(['dlq']);
    expect([none.code, none.stderr]).toEqual([2, expect.stringContaining('dlq needs an action: list, replay, purge')]);
    const wrong = await wagate(['replies', 'resent', '--id', '4']);
    expect([wrong.code, wrong.stderr]).toEqual([2, expect.stringContaining('replies has no action "resent"; its actions: unknown, undelivered, resend, settle')]);
    const port = await wagate(['fake-provider', '--port', 'abc']);
    expect([port.code, port.stderr]).toEqual([2, expect.stringContaining('--port abc is not a port: use a number from 0 to 65535')]);
    const host = await wagate(['fake-provider', '--host', 'fake.local']);
    expect([host.code, host.stderr]).toEqual([2, expect.stringContaining('--host fake.local is not an IP address')]);
    const id = await wagate(['replies', 'resend', '--id', 'abc']);
    expect([id.code, id.stderr]).toEqual([2, expect.stringContaining('--id abc is not a reply id: use a number from wagate replies unknown or wagate replies undelivered')]);
    const hours = await wagate(['replies', 'undelivered', '--hours', '0']);
    expect([hours.code, hours.stderr]).toEqual([2, expect.stringContaining('--hours 0 is not a number of hours from 1 to 8784')]);
  });

  it('says there is no such reply, rather than that it is not unknown', async () => {
    const db = await createTestDatabase();
    try {
      const result = await wagate(['replies', 'settle', '--id', '99999', '--as', 'sent'], { DATABASE_URL: db.url, LOG_LEVEL: 'silent' });
      expect([result.code, result.stderr]).toEqual([1, expect.stringContaining('there is no reply 99999: wagate replies unknown lists the ones that can be settled')]);
    } finally {
      await db.drop();
    }
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

  it('gives up on a gateway that takes the connection and never answers, after --timeout, saying so', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      // 0.51 s is 509.999… ms, which a timer takes only rounded.
      const result = await wagate(['send', '--url', `http://127.0.0.1:${port}`, '--timeout', '0.51'], { WHATSAPP_APP_SECRET: 'devsecret' });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`the gateway at http://127.0.0.1:${port}/api/v1/whatsapp-hardened/webhook took the connection but did not answer within 0.51 s`);
      const refused = await wagate(['send', '--timeout', 'soon'], { WHATSAPP_APP_SECRET: 'devsecret' });
      expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining('--timeout must be a positive number of seconds')]);
      // Beyond what Node's timers hold, it would give up at once, saying it waited that long.
      const tooLong = await wagate(['send', '--url', `http://127.0.0.1:${port}`, '--timeout', '3000000'], { WHATSAPP_APP_SECRET: 'devsecret' });
      expect([tooLong.code, tooLong.stderr]).toEqual([2, expect.stringContaining('--timeout must be at most 86400 seconds (24 hours)')]);
    } finally {
      silent.close();
    }
  });

  it('names a Postgres that refuses the login or lacks the database, with the server and what to fix, never the password', async () => {
    const unknownRole = await wagate(['migrate'], { DATABASE_URL: `${withDatabaseUser('wagate_no_such_role', 'pw-not-shown')}` });
    expect(unknownRole.code).toBe(1);
    expect(unknownRole.stderr).toMatch(/Postgres refused the login: check the user in DATABASE_URL/);
    expect(unknownRole.stderr).toMatch(/server wagate_no_such_role@/);
    expect(unknownRole.stderr).not.toContain('pw-not-shown');
    const noDatabase = await wagate(['migrate'], { DATABASE_URL: withDatabase(ADMIN_DATABASE_URL, 'wagate_no_such_database') });
    expect(noDatabase.code).toBe(1);
    expect(noDatabase.stderr).toMatch(/the database named in DATABASE_URL does not exist/);
    const port = await closedPort();
    const unreachable = await wagate(['migrate'], { DATABASE_URL: withPort(ADMIN_DATABASE_URL, port) });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain(`127.0.0.1:${port}`);
    expect(unreachable.stderr).toMatch(/cannot be reached: check that it runs/);
  });

  it.each(['ingest', 'worker'])('stops %s at start when Postgres refuses its login, naming the server', async (role) => {
    const result = await wagate([role], {
      DATABASE_URL: withDatabaseUser('wagate_no_such_role', 'pw-not-shown'),
      PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      NODE_ENV: 'test',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/Postgres refused the login: check the user in DATABASE_URL .*\(server wagate_no_such_role@/);
    expect(result.stderr).not.toContain('pw-not-shown');
  });

  it('names a broker that refuses the login at once, and one that does not answer with its last error, never the password', async () => {
    const db = await createTestDatabase();
    try {
      const broker = new URL(process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
      broker.password = 'wrong-password-not-shown';
      const refused = await wagate(['dlq', 'list'], { DATABASE_URL: db.url, AMQP_URL: broker.toString(), LOG_LEVEL: 'silent' });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/the broker at \S+ refused the login of user "guest": check the user and password in AMQP_URL/);
      expect(refused.stdout + refused.stderr).not.toContain('wrong-password-not-shown');
      const port = await closedPort();
      const away = await wagate(['dlq', 'list'], { DATABASE_URL: db.url, AMQP_URL: `amqp://guest:guest@127.0.0.1:${port}`, LOG_LEVEL: 'silent' });
      expect(away.code).toBe(1);
      expect(away.stderr).toMatch(new RegExp(`no broker answered at amqp://guest:\\S*@127\\.0\\.0\\.1:${port} within 10 s \\(last error: .*ECONNREFUSED.*\\): check AMQP_URL`));
      // One line says it all: no JSON lines from the broker's retries.
      expect(away.stdout).toBe('');
    } finally {
      await db.drop();
    }
  }, 60_000);

  it('says which secret to check when the gateway refuses the signature of a sample', async () => {
    const db = await createTestDatabase();
    const gateway = await startTestIngest(db.url);
    try {
      const result = await wagate(['send', '--url', gateway.baseUrl], { WHATSAPP_APP_SECRET: 'not-the-gateways-secret' });
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/^401 /);
      expect(result.stderr).toMatch(/the gateway refused the signature: sign with a secret it knows \(the first WHATSAPP_APP_SECRET here/);
      expect(result.stderr).not.toContain('not-the-gateways-secret');
    } finally {
      await gateway.stop();
      await db.drop();
    }
  });

  it('wait-ready gives up after its timeout naming the URL', async () => {
    const port = await closedPort();
    const result = await wagate(['wait-ready', '--url', `http://127.0.0.1:${port}`, '--timeout', '1']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`http://127.0.0.1:${port}/readyz was not ready after 1 s (ECONNREFUSED`);
    const brief = await wagate(['wait-ready', '--url', `http://127.0.0.1:${port}`, '--timeout', '0.4']);
    expect([brief.code, brief.stderr]).toEqual([1, expect.stringContaining(`http://127.0.0.1:${port}/readyz was not ready after 0.4 s (ECONNREFUSED`)]);
  });

  it('wait-ready and send refuse a --url without its scheme at once, with exit 2, rather than poll it until the timeout', async () => {
    for (const args of [['wait-ready', '--url', '127.0.0.1:1', '--timeout', '600'], ['wait-ready', '--url', 'localhost:8080'], ['send', '--url', 'ftp://127.0.0.1:1']]) {
      const result = await wagate(args);
      expect([args, result.code, result.stderr]).toEqual([args, 2, expect.stringContaining('--url must be the gateway\'s address with its scheme, such as http://127.0.0.1:3000')]);
    }
  });

  it('wait-ready names the gateway\'s last answer, not the end of its own wait', async () => {
    // Not ready, and slow to say so: the request the wait's end cuts short must not hide the answers before it.
    let asked = 0;
    const notReady = http.createServer((_req, res) => {
      asked += 1;
      setTimeout(() => res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"status":"not ready","warmingUp":true}'), asked === 1 ? 0 : 1500);
    });
    await new Promise<void>((resolve) => notReady.listen(0, '127.0.0.1', resolve));
    const port = (notReady.address() as net.AddressInfo).port;
    try {
      const result = await wagate(['wait-ready', '--url', `http://localhost:${port}`, '--timeout', '1']);
      expect([result.code, result.stderr]).toEqual([1, expect.stringContaining(`was not ready after 1 s (it answered 503 {"status":"not ready","warmingUp":true})`)]);
    } finally {
      notReady.closeAllConnections();
      notReady.close();
    }
  });
});
