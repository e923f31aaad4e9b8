import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config';
import { createDatabase } from '../../src/db/client';
import { createOutboxRelay } from '../../src/ledger/outbox-relay';
import type { Publisher } from '../../src/queue/publisher';
import { topologyFromConfig } from '../../src/queue/depths';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait';

/**
 * An ingest pod cut off from PostgreSQL polls its outbox every second. It wrote a warning for
 * each failed poll, and a long outage buried everything else in the pod's logs.
 */
let db: TestDatabase;
let proxy: TcpProxy;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await proxy?.close();
  await db.drop();
});

it('logs failing sweeps once while Postgres is away, and once when they work again, with how many failed', async () => {
  const through = await startProxyFor(db.url, 5432);
  proxy = through.proxy;
  const sql = createDatabase({ url: through.url, maxConnections: 2, connectTimeoutSeconds: 1, statementTimeoutMs: 2_000, applicationName: 'wagate-test-sweep-log' });
  const lines: { msg: string; failures?: number }[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(JSON.parse(chunk.toString())), done()) });
  const publisher: Publisher = { publishAll: async (_exchange, entries) => entries.map(() => false) };
  const relay = createOutboxRelay({
    sql, publisher, topology: topologyFromConfig(loadConfig(testEnv(''))), canPublish: () => false, leaseSeconds: 30, confirmTimeoutMs: 1_000,
    pollMs: 20, publishLingerMs: 0, log: createLogger('info', 'wagate-test', sink), metrics: createMetrics('ingest', { processMetrics: false }),
  });
  const about = (start: string) => lines.filter((line) => line.msg.startsWith(start));
  relay.start();
  try {
    proxy.setMode('refuse');
    await waitFor('the first failed sweep to be logged', () => about('outbox sweeps fail;').length > 0);
    // Each poll tries Postgres again: many connection attempts mean many failed sweeps.
    const refusedBefore = proxy.refused();
    await waitFor('many more polls to fail', () => proxy.refused() >= refusedBefore + 8);
    proxy.setMode('forward');
    await waitFor('the sweeps to be logged working again', () => about('outbox sweeps work again').length > 0);
  } finally {
    proxy.setMode('forward');
    await relay.stop();
    await sql.end({ timeout: 1 });
  }
  expect(about('outbox sweeps fail;')).toHaveLength(1);
  expect(about('outbox sweeps work again')).toHaveLength(1);
  expect(about('outbox sweeps work again')[0]!.failures).toBeGreaterThanOrEqual(5);
}, 30_000);
