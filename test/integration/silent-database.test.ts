import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { runWagate } from '../support/process';

/**
 * A database address that takes connections and closes them before any answer, as a proxy or
 * sidecar does whose upstream is down. postgres.js reconnects in a tight loop and its query
 * never settles, or, when the close is a reset, fails the query: `migrate`, the operator
 * commands and every long-running role used to hang in the first case, and the roles to start
 * as in an outage, never ready and saying nothing, in the second.
 */
const servers: Server[] = [];

/** Far beyond the 10 s bound and a 5 s pool close, with room for a busy machine. */
const KILL_AFTER_MS = 60_000;

async function databaseThat(close: (socket: Socket) => void): Promise<{ url: string; accepted: () => number }> {
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    // Read, so the client's close is seen and the socket freed: an unread socket kept its
    // descriptor, and the clients' reconnect loop (over a thousand a second on a fast machine)
    // ran this process out of descriptors before they gave up.
    socket.resume();
    socket.on('error', () => undefined);
    close(socket);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `postgres://wagate@127.0.0.1:${(server.address() as AddressInfo).port}/shop`, accepted: () => accepted };
}

afterAll(() => {
  for (const server of servers) server.close();
});

async function expectBothStopped(databaseUrl: string): Promise<void> {
  const env = { NODE_ENV: 'test', DATABASE_URL: databaseUrl, METRICS_PORT: '0' };
  // An operator command too: they used to wait without a word, for ever.
  const [migrate, worker, replies] = await Promise.all([
    runWagate(['migrate'], env, KILL_AFTER_MS),
    runWagate(['worker'], env, KILL_AFTER_MS),
    runWagate(['replies', 'unknown'], env, KILL_AFTER_MS),
  ]);
  const expected = `Postgres at wagate@127.0.0.1:${new URL(databaseUrl).port}/shop took connections but gave no answer within 10 s`;
  expect([migrate.code, migrate.stderr]).toEqual([1, expect.stringContaining(`wagate migrate: failed: ${expected}`)]);
  expect([worker.code, worker.stderr]).toEqual([1, expect.stringContaining(`wagate worker: failed: ${expected}`)]);
  expect([replies.code, replies.stderr]).toEqual([1, expect.stringContaining(`wagate replies: failed: ${expected}`)]);
  expect(worker.stderr).toContain('a proxy or sidecar whose upstream is down');
}

it('stops migrate and a starting worker with exit 1 and a message that says what to check', async () => {
  const database = await databaseThat((socket) => socket.end());
  await expectBothStopped(database.url);
  // The server was reached, so this is the silent case and not a refused connection.
  expect(database.accepted()).toBeGreaterThan(0);
}, 90_000);

it('stops them the same way when the connections are reset once the login is sent', async () => {
  // A reset fails the query at once instead of holding it: it is no answer from Postgres either.
  const database = await databaseThat((socket) => socket.once('data', () => socket.resetAndDestroy()));
  await expectBothStopped(database.url);
  expect(database.accepted()).toBeGreaterThan(0);
}, 90_000);
