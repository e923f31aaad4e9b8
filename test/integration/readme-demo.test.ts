import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { deleteTopology, TEST_AMQP_URL } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { randomQueuePrefix } from '../support/ingest';

const REPO = path.join(__dirname, '..', '..');
const DEMO_MARKER = '<!-- demo: test/integration/readme-demo.test.ts runs this block as written -->';

/** The README's demo block, exactly as a reader would paste it. */
function readmeDemo(): string {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const start = readme.indexOf(DEMO_MARKER);
  if (start < 0) throw new Error('README.md has no demo block marker');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start));
  if (!block) throw new Error('no sh block after the demo marker');
  return block[1]!;
}

/**
 * Below Linux's ephemeral range (32768 and up by default), from which the other test files'
 * connections and servers take their ports: one of them took the worker's metrics port between
 * this check and the demo's listen, and the demo stopped with EADDRINUSE.
 */
const LOWEST_PORT = 20000;
const EPHEMERAL_START = 32768;
const taken = new Set<number>();

/** A port with a free neighbour, apart from the pairs already chosen: the worker's metrics sit on METRICS_PORT + 1. */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = LOWEST_PORT + Math.floor(Math.random() * (EPHEMERAL_START - 1 - LOWEST_PORT));
    if (taken.has(port) || taken.has(port + 1)) continue;
    if ((await portFree(port)) && (await portFree(port + 1))) {
      taken.add(port).add(port + 1);
      return port;
    }
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

let db: TestDatabase;
const QUEUE_PREFIX = randomQueuePrefix();

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});

afterAll(async () => {
  await deleteTopology(topologyFromConfig(loadConfig({ QUEUE_PREFIX, AMQP_URL: TEST_AMQP_URL })));
  await db.drop();
});

describe('the README demo', () => {
  it('works pasted into a fresh shell: the order, its confirmation, the stats and a metrics line', async () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'wagate-demo-'));
    const [port, metricsPort, fakePort] = [await freePortPair(), await freePortPair(), await freePortPair()];
    const untrackedBefore = readdirSync(REPO);
    // A fresh shell: no variables of this test run but the isolation overrides.
    const child = spawn('bash', ['-c', readmeDemo()], {
      cwd: REPO,
      detached: true,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? folder,
        TMPDIR: folder,
        PORT: String(port),
        METRICS_PORT: String(metricsPort),
        FAKE_PORT: String(fakePort),
        DATABASE_URL: db.url,
        AMQP_URL: TEST_AMQP_URL,
        QUEUE_PREFIX,
      },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    // The block leaves the fake provider and the gateway running, as it does for a reader.
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    expect({ code, output }).toMatchObject({ code: 0 });
    expect(output).toMatch(/^ready: http:\/\/127\.0\.0\.1:\d+$/m);
    expect(output).toMatch(/^hello$/m); // the Meta handshake with WHATSAPP_VERIFY_TOKEN
    expect(output).toMatch(/^\s*\d+ \| 15551234567\s*\| +19\.50 \| EUR +\| open$/m);
    expect(output).toMatch(/Order #\d+: 2 × Pizza Margherita/);
    expect(output).toMatch(/"messages":2/);
    expect(output).toMatch(/^wagate_orders_created_total\{.*source="whatsapp".*\} 1$/m);
    // The sample catalog went to the temporary folder, not into the repository.
    const demoFolders = readdirSync(folder).filter((name) => name.startsWith('tmp.'));
    expect(demoFolders.some((name) => existsSync(path.join(folder, name, 'menu.csv')))).toBe(true);
    expect(readdirSync(REPO)).toEqual(untrackedBefore);
    const devLog = demoFolders.map((name) => path.join(folder, name, 'dev.log')).find(existsSync)!;
    expect(readFileSync(devLog, 'utf8')).toMatch(new RegExp(`^wagate dev ready: Meta webhooks http://127\\.0\\.0\\.1:${port}/`, 'm'));
  }, 300_000);
});
