import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config';
import { createDatabase } from '../../src/db/client';
import { createOutboxRelay, type OutboxRelayOptions } from '../../src/ledger/outbox-relay';
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
 * An ingest pod cut off from PostgreSQL: its relay polls the outbox every second and refreshes
 * the outbox gauges, which it is still scraped for.
 */
let db: TestDatabase;
let proxy: TcpProxy;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

afterEach(async () => {
  await proxy?.close();
});

/** A relay whose Postgres is reached through a proxy that can play an outage; it publishes nothing. */
async function relayThroughProxy(options: Partial<OutboxRelayOptions>) {
  const through = await startProxyFor(db.url, 5432);
  proxy = through.proxy;
  const sql = createDatabase({ url: through.url, maxConnections: 2, connectTimeoutSeconds: 1, statementTimeoutMs: 2_000, applicationName: 'wagate-test-relay' });
  const publisher: Publisher = { publishAll: async (_exchange, entries) => entries.map(() => false) };
  const metrics = createMetrics('ingest', { processMetrics: false });
  const relay = createOutboxRelay({
    sql, publisher, topology: topologyFromConfig(loadConfig(testEnv(''))), canPublish: () => false, leaseSeconds: 30, confirmTimeoutMs: 1_000,
    pollMs: 50, publishLingerMs: 0, log: createLogger('silent', 'wagate-test'), metrics, ...options,
  });
  relay.start();
  return {
    relay,
    metrics,
    async stop() {
      proxy.setMode('forward');
      await relay.stop();
      await sql.end({ timeout: 1 });
    },
  };
}

it('reads NaN, which max() passes over, once a pod has not read the outbox for longer than the gauges are kept', async () => {
  // Its outbox gauges kept the backlog it last saw, and WagateOutboxBacklog's max() fired on
  // them after the outbox had drained.
  await db.sql`
    WITH m AS (INSERT INTO webhook_messages (webhook_source, message_id, phone_number, status) VALUES ('whatsapp', 'wamid.gauge', '1', 'queued') RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() + interval '1 hour' FROM m`;
  const { metrics, stop } = await relayThroughProxy({ gaugesKeptMs: 500 });
  try {
    await waitFor('the gauge to read the outbox', async () => (await counterValue(metrics, 'wagate_outbox_pending_messages', {})) === 1);
    proxy.setMode('refuse');
    await waitFor('the gauges to read NaN', async () =>
      Number.isNaN(await counterValue(metrics, 'wagate_outbox_pending_messages', {})) && Number.isNaN(await counterValue(metrics, 'wagate_outbox_oldest_age_seconds', {})));
  } finally {
    await stop();
  }
}, 30_000);

it('logs failing sweeps once while Postgres is away, and once when they work again, with how many failed', async () => {
  // It wrote a warning for each failed poll, and a long outage buried everything else in its logs.
  const lines: { msg: string; failures?: number }[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(JSON.parse(chunk.toString())), done()) });
  const { stop } = await relayThroughProxy({ pollMs: 20, log: createLogger('info', 'wagate-test', sink) });
  const about = (start: string) => lines.filter((line) => line.msg.startsWith(start));
  try {
    proxy.setMode('refuse');
    await waitFor('the first failed sweep to be logged', () => about('outbox sweeps fail;').length > 0);
    // Each poll tries Postgres again: many connection attempts mean many failed sweeps.
    const refusedBefore = proxy.refused();
    await waitFor('many more polls to fail', () => proxy.refused() >= refusedBefore + 8);
    proxy.setMode('forward');
    await waitFor('the sweeps to be logged working again', () => about('outbox sweeps work again').length > 0);
  } finally {
    await stop();
  }
  expect(about('outbox sweeps fail;')).toHaveLength(1);
  expect(about('outbox sweeps work again')).toHaveLength(1);
  expect(about('outbox sweeps work again')[0]!.failures).toBeGreaterThanOrEqual(5);
}, 30_000);

it('reads the outbox for its gauges once at a time, however long one reading takes', async () => {
  // After a long broker outage the outbox holds millions of rows and one count outlasts the poll:
  // started at every poll, the readings piled up on the pool while the ledger's commits waited.
  let sweeps = 0;
  let readings = 0;
  const sql = ((strings: TemplateStringsArray) => {
    const text = strings.join('');
    if (text.includes('AS pending')) {
      readings += 1;
      return new Promise(() => undefined);
    }
    if (text.includes('AS any')) sweeps += 1;
    return Promise.resolve(text.includes('AS any') ? [{ any: false }] : []);
  }) as unknown as OutboxRelayOptions['sql'];
  const publisher: Publisher = { publishAll: async (_exchange, entries) => entries.map(() => false) };
  const metrics = createMetrics('ingest', { processMetrics: false });
  const relay = createOutboxRelay({
    sql, publisher, topology: topologyFromConfig(loadConfig(testEnv(''))), canPublish: () => true, leaseSeconds: 30, confirmTimeoutMs: 1_000,
    pollMs: 5, publishLingerMs: 0, log: createLogger('silent', 'wagate-test'), metrics, gaugesKeptMs: 200,
  });
  relay.start();
  try {
    await waitFor('twenty polls', () => sweeps >= 20);
    expect(readings).toBe(1);
    // The one reading never answers: past the time the gauges are kept, they read NaN, as after a failed one.
    await waitFor('the gauges to read NaN', async () => Number.isNaN(await counterValue(metrics, 'wagate_outbox_pending_messages', {})));
    expect(readings).toBe(1);
  } finally {
    await relay.stop();
  }
});
