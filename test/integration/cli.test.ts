import { spawn } from 'node:child_process';
import { openQueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startTestIngest, testEnv, type TestIngest } from '../support/ingest';
import { MAIN_JS } from '../support/process';

let db: TestDatabase;
let ingest: TestIngest;
const PUBLIC_BASE_URL = 'https://gateway.example.com';

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});

afterAll(async () => {
  await ingest?.stop();
  if (ingest) {
    const probe = await openQueueProbe();
    await probe.deleteTopology(ingest.topology);
    await probe.close();
  }
  await db.drop();
});

function wagate(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], {
      env: { PATH: process.env.PATH ?? '', ...testEnv(db.url, { PUBLIC_BASE_URL }), ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('wagate command line', () => {
  it('migrate applies the schema and is idempotent', async () => {
    expect((await wagate(['migrate'])).code).toBe(0);
    expect((await wagate(['migrate'])).code).toBe(0);
    const rows = await db.sql`SELECT count(*)::int AS n FROM schema_migrations`;
    expect(rows[0]!.n).toBeGreaterThan(0);
  });

  it('stops with exit 1 and names the invalid variable without echoing it', async () => {
    const result = await wagate(['ingest'], { PORT: 'eighty-eighty' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/wagate ingest: invalid configuration: PORT/);
    expect(result.stderr).not.toContain('eighty-eighty');
  });

  it('explains unknown commands and missing options with exit 2', async () => {
    const unknown = await wagate(['launch']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "launch"/);
    const release = await wagate(['release']);
    expect(release.code).toBe(2);
    expect(release.stderr).toMatch(/release needs --phone/);
  });

  it('send posts correctly signed Meta and Twilio samples to a running gateway', async () => {
    ingest = await startTestIngest(db.url, { PUBLIC_BASE_URL });
    const meta = await wagate(['send', '--url', ingest.baseUrl, '--text', 'hi', '--id', 'wamid.cli-sample', '--from', '15559990000']);
    expect(meta.code).toBe(0);
    expect(meta.stdout).toMatch(/^200 EVENT_RECEIVED/);
    const twilio = await wagate(['send', '--provider', 'twilio', '--url', ingest.baseUrl, '--text', 'hola', '--id', 'SMcli0000000000000000000000000001']);
    expect(twilio.code).toBe(0);
    expect(twilio.stdout).toMatch(/^200 <\?xml/);
    const rows = await db.sql`SELECT webhook_source, message_id, status FROM webhook_messages ORDER BY id`;
    expect(rows).toEqual([
      { webhook_source: 'whatsapp', message_id: 'wamid.cli-sample', status: 'queued' },
      { webhook_source: 'twilio', message_id: 'SMcli0000000000000000000000000001', status: 'queued' },
    ]);
    const refused = await wagate(['send', '--url', ingest.baseUrl], { WHATSAPP_APP_SECRET: 'not-the-gateway-secret' });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^401/);
  });

  it('release reports how many messages it re-queued', async () => {
    const result = await wagate(['release', '--phone', '15559990000']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/released 0 rate_limited message\(s\)/);
  });
});
