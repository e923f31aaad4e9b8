import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config';
import { createOutboxRelay, type OutboxRelay } from '../../src/ledger/outbox-relay';
import type { QueuedEntry } from '../../src/ledger/recorder';
import { createBroker, type Broker } from '../../src/queue/broker';
import { topologyFromConfig } from '../../src/queue/depths';
import type { QueueMessage } from '../../src/queue/message';
import { createPublisher } from '../../src/queue/publisher';
import { assertTopology } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';

/**
 * The owner publishes the rows it just committed within their outbox lease; a sweeper claims
 * them once it runs out. A row whose lease could end before the broker's confirm (its commit
 * was slow) is left to the sweep, so the two never publish the same row at once.
 */
/** Longer than the confirm deadline, as the configuration requires, but not twice as long. */
const LEASE_SECONDS = 12;
const CONFIRM_TIMEOUT_MS = 10_000;

const topology = topologyFromConfig(loadConfig(testEnv('postgres://unused@127.0.0.1/unused')));
let db: TestDatabase;
let broker: Broker;
let probe: QueueProbe;
let relay: OutboxRelay;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
  broker = createBroker({
    url: TEST_AMQP_URL,
    name: 'owner-publish-lease-test',
    log: createLogger('silent', 'test'),
    setup: (channel) => assertTopology(channel, topology),
  });
  await broker.waitUntilConnected(10_000);
  relay = createOutboxRelay({
    sql: db.sql,
    publisher: createPublisher(broker, CONFIRM_TIMEOUT_MS),
    topology,
    canPublish: () => broker.isConnected(),
    leaseSeconds: LEASE_SECONDS,
    confirmTimeoutMs: CONFIRM_TIMEOUT_MS,
    pollMs: 60_000,
    publishLingerMs: 0,
    log: createLogger('silent', 'test'),
    metrics: createMetrics('ingest', { processMetrics: false }),
  });
}, 30_000);

afterAll(async () => {
  await relay.stop();
  await broker.close();
  await probe.deleteTopology(topology);
  await probe.close();
  await db.drop();
});

/** A queued message with its outbox row, as the ledger commits it, written `ageMs` ago. */
async function committed(ageMs: number): Promise<QueuedEntry> {
  const messageId = `wamid.owner.${randomBytes(6).toString('hex')}`;
  const payload: QueueMessage = {
    v: 1, source: 'whatsapp', messageId, from: '15550500002', senderKey: '15550500002', business: '100',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { body: 'menu' },
  };
  const [row] = await db.sql<{ id: string }[]>`
    WITH m AS (
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
      VALUES ('whatsapp', ${messageId}, ${payload.from}, ${payload.senderKey}, '100', 'queued', ${db.sql.json(payload as never)})
      RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until)
    SELECT id, now() + make_interval(secs => ${LEASE_SECONDS}) - make_interval(secs => ${ageMs / 1000}) FROM m
    RETURNING webhook_message_id::text AS id`;
  return { rowId: row!.id, source: 'whatsapp', messageId, payload, traceparent: '', leaseStartedAtMs: Date.now() - ageMs };
}

const outboxHas = async (entry: QueuedEntry) => (await db.sql`SELECT 1 FROM outbox WHERE webhook_message_id = ${entry.rowId}`).length > 0;

it('publishes a row whose lease outlasts the confirm deadline, and hands one whose lease may not to the sweep at once, ahead of the rows after it', async () => {
  const fresh = await committed(0);
  expect(await relay.publishOwned([fresh])).toBe(true);
  expect((await probe.drainWork(topology)).map((message) => message.properties.messageId)).toEqual([`whatsapp:${fresh.messageId}`]);

  // 4 s of a 12 s lease gone, by a slow commit: a confirm could take 10 s more, past the lease.
  const late = await committed(4_000);
  expect(await relay.publishOwned([late])).toBe(false);
  expect(await probe.drainWork(topology)).toEqual([]);
  expect(await outboxHas(late)).toBe(true);
  // Released to the sweep at once, not a lease later: the sender's next message, committed
  // fresh, must not go out ahead of it.
  const [lease] = await db.sql<{ expired: boolean }[]>`SELECT lease_until <= now() AS expired FROM outbox WHERE webhook_message_id = ${late.rowId}`;
  expect(lease!.expired).toBe(true);
  const next = await committed(0);
  expect(await relay.publishOwned([next])).toBe(false);
  expect(await probe.drainWork(topology)).toEqual([]);

  expect(await relay.sweepOnce()).toBe(2);
  expect((await probe.drainWork(topology)).map((message) => message.properties.messageId))
    .toEqual([`whatsapp:${late.messageId}`, `whatsapp:${next.messageId}`]);
  // Nothing waits any more: the owner publishes at once again.
  const after = await committed(0);
  expect(await relay.publishOwned([after])).toBe(true);
  expect((await probe.drainWork(topology)).map((message) => message.properties.messageId)).toEqual([`whatsapp:${after.messageId}`]);
});
