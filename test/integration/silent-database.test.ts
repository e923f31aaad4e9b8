import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { runWagate } from '../support/process';

/**
 * A database address that takes connections and closes them at once, as a proxy or sidecar
 * does whose upstream is down. postgres.js reconnects in a tight loop and its query never
 * settles: `migrate` and every long-running role used to hang there for ever, without a word.
 */
let server: Server;
let accepted = 0;
let databaseUrl: string;

beforeAll(async () => {
  server = createServer((socket) => {
    accepted += 1;
    socket.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  databaseUrl = `postgres://wagate@127.0.0.1:${(server.address() as AddressInfo).port}/shop`;
});

afterAll(() => {
  server.close();
});

it('stops migrate and a starting worker with exit 1 and a message that says what to check', async () => {
  const env = { NODE_ENV: 'test', DATABASE_URL: databaseUrl, METRICS_PORT: '0' };
  const [migrate, worker] = await Promise.all([runWagate(['migrate'], env), runWagate(['worker'], env)]);
  const expected = `Postgres at wagate@127.0.0.1:${new URL(databaseUrl).port}/shop took connections but gave no answer within 10 s`;
  expect([migrate.code, migrate.stderr]).toEqual([1, expect.stringContaining(`wagate migrate: failed: ${expected}`)]);
  expect([worker.code, worker.stderr]).toEqual([1, expect.stringContaining(`wagate worker: failed: ${expected}`)]);
  expect(worker.stderr).toContain('a proxy or sidecar whose upstream is down');
  // The server was reached, so this is the silent case and not a refused connection.
  expect(accepted).toBeGreaterThan(0);
}, 90_000);
