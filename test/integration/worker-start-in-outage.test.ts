import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { openQueueProbe, type QueueProbe } from '../support/amqp';
import { testEnv } from '../support/ingest';
import { spawnWagate, type ChildIngest } from '../support/process';
import { waitFor } from '../support/wait';

/**
 * A worker started while Postgres answers every login with 57P03 (starting up, or in
 * recovery) starts as in an outage, leaving readiness to say it is not ready. Its log must say
 * why, once, not on every round: it used to say nothing, so an operator saw a pod that never
 * became ready and a log that stopped at "worker started".
 */
let server: Server;
let logins = 0;
let probe: QueueProbe;
let worker: ChildIngest | undefined;
let env: Record<string, string>;

/** A Postgres ErrorResponse: severity, SQLSTATE and message, each a NUL-ended field. */
function errorResponse(code: string, message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0\0`, 'utf8');
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

beforeAll(async () => {
  server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => {
      logins += 1;
      socket.end(errorResponse('57P03', 'the database system is starting up'));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  env = testEnv(`postgres://postgres@127.0.0.1:${(server.address() as AddressInfo).port}/shop`, { LOG_LEVEL: 'info' });
  probe = await openQueueProbe();
});

afterAll(async () => {
  await worker?.stop('SIGKILL');
  await probe.deleteTopology(topologyFromConfig(loadConfig(env)));
  await probe.close();
  server.close();
});

const UNREAD = 'cannot read the worker group from Postgres; keeping the shards held and taking none until it answers';

it('says once that it cannot read its group from Postgres, and names the error', async () => {
  worker = await spawnWagate('worker', env);
  await waitFor('the worker to say it cannot read its group', () => worker!.logs.some((entry) => entry.msg === UNREAD));
  // Many rounds later (a login per round, 200 ms apart), still said once.
  const loginsWhenTold = logins;
  await waitFor('ten more rounds of the worker', () => logins >= loginsWhenTold + 10, 20_000);
  const told = worker.logs.filter((entry) => entry.msg === UNREAD);
  expect(told).toHaveLength(1);
  expect(told[0]).toMatchObject({ level: 40, err: expect.stringContaining('starting up'), held: 0 });
}, 60_000);
