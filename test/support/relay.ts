import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config';
import type { QueuedEntry } from '../../src/ledger/recorder';
import type { QueueMessage } from '../../src/queue/message';
import { createOutboxRelay, type OutboxRelay, type OutboxRelayOptions } from '../../src/ledger/outbox-relay';
import { createBroker, type Broker } from '../../src/queue/broker';
import { topologyFromConfig } from '../../src/queue/depths';
import { createPublisher } from '../../src/queue/publisher';
import { assertTopology } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics';
import { openQueueProbe, TEST_AMQP_URL, type QueueProbe } from './amqp';
import { createTestDatabase, type TestDatabase } from './database';
import { testEnv } from './ingest';

export interface RelayRig {
  db: TestDatabase;
  broker: Broker;
  probe: QueueProbe;
  relay: OutboxRelay;
  metrics: Metrics;
  topology: ReturnType<typeof topologyFromConfig>;
  stop(): Promise<void>;
}

/** The relay's settings a test may set; the rest are the defaults below (no polling: the test sweeps). */
export type RigRelayOptions = Partial<Omit<OutboxRelayOptions, 'sql' | 'topology' | 'log' | 'metrics'>> & { confirmTimeoutMs: number };

/**
 * A relay of its own, on a fresh database and a queue prefix of its own, publishing to the real
 * broker through the real publisher (or one wrapping it, from `publisherOf`).
 */
export async function startRelayRig(
  name: string,
  options: RigRelayOptions,
  publisherOf?: (broker: Broker, topology: RelayRig['topology']) => OutboxRelayOptions['publisher'],
  amqpUrl = TEST_AMQP_URL,
): Promise<RelayRig> {
  const topology = topologyFromConfig(loadConfig(testEnv('postgres://unused@127.0.0.1/unused')));
  const db = await createTestDatabase();
  const probe = await openQueueProbe(amqpUrl);
  const broker = createBroker({ url: amqpUrl, name, log: createLogger('silent', 'test'), setup: (channel) => assertTopology(channel, topology) });
  await broker.waitUntilConnected(10_000);
  const metrics = createMetrics('ingest', { processMetrics: false });
  const relay = createOutboxRelay({
    publisher: publisherOf?.(broker, topology) ?? createPublisher(broker, options.confirmTimeoutMs),
    canPublish: () => broker.isConnected(),
    leaseSeconds: 12,
    pollMs: 60_000,
    publishLingerMs: 0,
    ...options,
    sql: db.sql,
    topology,
    log: createLogger('silent', 'test'),
    metrics,
  });
  return {
    db, broker, probe, relay, metrics, topology,
    async stop() {
      await relay.stop();
      await broker.close();
      await probe.deleteTopology(topology);
      await probe.close();
      await db.drop();
    },
  };
}

/** What a commit leaves: a text message queued, and its outbox row leased to the process that committed it. */
export async function commitQueuedText(db: TestDatabase, sender: string, text: string): Promise<QueuedEntry> {
  const messageId = `wamid.relay.${randomBytes(6).toString('hex')}`;
  const payload: QueueMessage = {
    v: 1, source: 'whatsapp', messageId, from: sender, senderKey: sender, business: '100',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { text: { body: text } },
  };
  const [row] = await db.sql<{ id: string }[]>`
    WITH m AS (INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
               VALUES ('whatsapp', ${messageId}, ${sender}, ${sender}, '100', 'queued', ${db.sql.json(payload as never)}) RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() + interval '30 seconds' FROM m RETURNING webhook_message_id::text AS id`;
  return { rowId: row!.id, source: 'whatsapp', messageId, payload, traceparent: '', leaseStartedAtMs: Date.now() };
}
