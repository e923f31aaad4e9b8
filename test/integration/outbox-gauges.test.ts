import { loadConfig } from '../../src/config';
import { createDatabase } from '../../src/db/client';
import { createOutboxRelay } from '../../src/ledger/outbox-relay';
import type { Publisher } from '../../src/queue/publisher';
import { topologyFromConfig } from '../../src/queue/depths';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { counterValue } from '../support/in-process';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait';

/**
 * An ingest pod cut off from PostgreSQL is still scraped. Its outbox gauges kept the backlog it
 * last saw, and WagateOutboxBacklog's max() fired on them after the outbox had drained.
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

it('reads NaN, which max() passes over, once a pod has not read the outbox for longer than the gauges are kept', async () => {
  const through = await startProxyFor(db.url, 5432);
  proxy = through.proxy;
  const sql = createDatabase({ url: through.url, maxConnections: 2, connectTimeoutSeconds: 1, statementTimeoutMs: 2_000, applicationName: 'wagate-test-gauges' });
  const metrics = createMetrics('ingest', { processMetrics: false });
  // Nothing is published here: only the gauges the poll refreshes are under test.
  const publisher: Publisher = { publishAll: async (_exchange, entries) => entries.map(() => false) };
  const relay = createOutboxRelay({
    sql, publisher, topology: topologyFromConfig(loadConfig(testEnv(''))), canPublish: () => false, leaseSeconds: 30, confirmTimeoutMs: 1_000,
    pollMs: 50, publishLingerMs: 0, log: createLogger('silent', 'wagate-test'), metrics, gaugesKeptMs: 500,
  });
  await db.sql`
    WITH m AS (INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status) VALUES ('whatsapp', 'wamid.gauge', '1', 'queued') RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() + interval '1 hour' FROM m`;
  relay.start();
  try {
    await waitFor('the gauge to read the outbox', async () => (await counterValue(metrics, 'wagate_outbox_pending_messages', {})) === 1);
    proxy.setMode('refuse');
    await waitFor('the gauges to read NaN', async () =>
      Number.isNaN(await counterValue(metrics, 'wagate_outbox_pending_messages', {})) && Number.isNaN(await counterValue(metrics, 'wagate_outbox_oldest_age_seconds', {})));
  } finally {
    proxy.setMode('forward');
    await relay.stop();
    await sql.end({ timeout: 1 });
  }
}, 30_000);
