import { loadConfig } from '../../src/config';
import { createDatabase } from '../../src/db/client';
import { createOutboxRelay } from '../../src/ledger/outbox-relay';
import { createBroker } from '../../src/queue/broker';
import { topologyFromConfig } from '../../src/queue/depths';
import { createPublisher } from '../../src/queue/publisher';
import { assertTopology } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { openQueueProbe, TEST_AMQP_URL } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { commitQueuedText } from '../support/relay';
import { startProxyFor } from '../support/tcp-proxy';

/**
 * An ingest that stops while Postgres refuses it: its relay's last DELETE of confirmed outbox
 * rows fails. It used to arm its retry timer from there, and a process that stopped its
 * ingest and went on (tests, `wagate dev`) tried again every second for as long as it lived,
 * against a closed pool. The rows stay in the outbox for a sweep, which is at least once.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

it('leaves the confirmed rows it cannot delete at its stop to a sweep, and tries no more', async () => {
  const { proxy, url } = await startProxyFor(db.url, 5432);
  const sql = createDatabase({ url, maxConnections: 2, connectTimeoutSeconds: 1, statementTimeoutMs: 2_000, applicationName: 'wagate-test-relay' });
  const topology = topologyFromConfig(loadConfig(testEnv('postgres://unused@127.0.0.1/unused')));
  const broker = createBroker({ url: TEST_AMQP_URL, name: 'relay-stop-delete', log: createLogger('silent', 'test'), setup: (channel) => assertTopology(channel, topology) });
  const probe = await openQueueProbe();
  const lines: { msg: string; count?: number }[] = [];
  try {
    await broker.waitUntilConnected(10_000);
    const relay = createOutboxRelay({
      sql, topology, publisher: createPublisher(broker, 5_000), canPublish: () => broker.isConnected(),
      leaseSeconds: 30, confirmTimeoutMs: 5_000, pollMs: 60_000, publishLingerMs: 0,
      log: createLogger('info', 'wagate-test', { write: (line: string) => void lines.push(JSON.parse(line)) }),
      metrics: createMetrics('ingest', { processMetrics: false }),
    });
    const entry = await commitQueuedText(db, '15550009001', '1 coke');
    expect(await relay.publishOwned([entry])).toBe(true);
    // The confirmed row's DELETE is gathered for a moment: Postgres goes away before it is sent.
    proxy.setMode('refuse');
    await relay.stop();

    const [row] = await db.sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM outbox WHERE webhook_message_id = ${entry.rowId}`;
    expect(row!.n).toBe(1);
    expect(lines.filter((line) => line.msg.startsWith('outbox delete failed while stopping'))).toEqual([expect.objectContaining({ count: 1 })]);
    expect(lines.filter((line) => line.msg === 'outbox delete failed; will retry')).toEqual([]);
  } finally {
    await broker.close();
    await probe.deleteTopology(topology);
    await probe.close();
    await sql.end({ timeout: 1 });
    await proxy.close();
  }
}, 60_000);
