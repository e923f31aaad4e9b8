import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { MAIN_JS } from '../support/process';
import { waitFor } from '../support/wait';

/**
 * In a container wagate runs as PID 1, which ignores a signal it has no handler for; outside
 * one the default handler kills it. Either way a signal during start-up must end the start:
 * a worker that waited for migrations used to start anyway, take its shards, and be killed at
 * the end of the grace period with messages in hand. Here (not PID 1) the unhandled case
 * showed as a death by the signal, which these tests tell apart from wagate's own exits.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});

afterAll(async () => {
  await db.drop();
});

function start(args: string[]) {
  const child = spawn(process.execPath, [MAIN_JS, ...args], {
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', DATABASE_URL: db.url, METRICS_PORT: '0', PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, output: () => output, exited };
}

it('stops a worker that waits for migrations at once, with exit 0 and a line that says so', async () => {
  const worker = start(['worker']);
  try {
    await waitFor('the worker to wait for migrations', () => worker.output().includes('lacks migrations this release needs'));
    worker.child.kill('SIGTERM');
    const [code, signal] = await worker.exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(worker.output()).toContain('wagate worker: SIGTERM while starting; stopping as soon as the start allows');
    expect(worker.output()).toContain('wagate worker: stopped before it started');
  } finally {
    worker.child.kill('SIGKILL');
  }
}, 60_000);

it('ends a command that runs once with 128 + the signal and a line that says so', async () => {
  // A gateway that is never ready: its first request shows the command is running.
  let asked = 0;
  const gateway = createServer((_req, res) => {
    asked += 1;
    res.writeHead(503).end();
  });
  gateway.listen(0, '127.0.0.1');
  await once(gateway, 'listening');
  const { port } = gateway.address() as AddressInfo;
  const waiting = start(['wait-ready', '--url', `http://127.0.0.1:${port}`, '--timeout', '120']);
  try {
    await waitFor('the command to ask the gateway', () => asked > 0);
    waiting.child.kill('SIGINT');
    const [code, signal] = await waiting.exited;
    expect({ code, signal }).toEqual({ code: 130, signal: null });
    expect(waiting.output()).toContain('wagate wait-ready: stopped by SIGINT');
  } finally {
    waiting.child.kill('SIGKILL');
    gateway.close();
  }
}, 60_000);
