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
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait';

/**
 * A broker slower than a whole lease (a quorum queue without its majority, its connection up):
 * the owner's publish is still unanswered when the row's first lease ends. The owner renews the
 * lease while it waits, so another pod's sweep leaves the row alone, and the late confirm
 * settles it: one copy, as no process died. test/faults/slow-confirm.test.ts covers a confirm
 * late by less than a lease.
 */
const LEASE_SECONDS = 3;
const CONFIRM_TIMEOUT_MS = 500;
const topology = topologyFromConfig(loadConfig(testEnv('postgres://unused@127.0.0.1/unused')));
let db: TestDatabase;
let probe: QueueProbe;
let proxy: TcpProxy;
let proxiedUrl: string;
const brokers: Broker[] = [];
const relays: OutboxRelay[] = [];

function relayOn(broker: Broker): OutboxRelay {
  const relay = createOutboxRelay({
    sql: db.sql, publisher: createPublisher(broker, CONFIRM_TIMEOUT_MS), topology,
    canPublish: () => broker.isConnected(), leaseSeconds: LEASE_SECONDS, confirmTimeoutMs: CONFIRM_TIMEOUT_MS,
    // The test sweeps by hand; the poll only renews.
    pollMs: 600_000, publishLingerMs: 0, log: createLogger('silent', 'test'), metrics: createMetrics('ingest', { processMetrics: false }),
  });
  relay.start();
  relays.push(relay);
  return relay;
}

async function brokerAt(url: string): Promise<Broker> {
  const broker = createBroker({ url, name: 'slow-confirm-past-lease', log: createLogger('silent', 'test'), setup: (channel) => assertTopology(channel, topology) });
  await broker.waitUntilConnected(10_000);
  brokers.push(broker);
  return broker;
}

/** A queued message and its outbox row, as the ledger commits them, leased to its owner. */
async function committedMessage(): Promise<{ entry: QueuedEntry; leaseEnd: Date }> {
  const messageId = `wamid.slow.${randomBytes(6).toString('hex')}`;
  const payload: QueueMessage = {
    v: 1, source: 'whatsapp', messageId, from: '15550500009', senderKey: '15550500009', business: '100', contactName: null,
    type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { body: 'menu' },
  };
  const [row] = await db.sql<{ id: string; lease_until: Date }[]>`
    WITH m AS (INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
      VALUES ('whatsapp', ${messageId}, '15550500009', '15550500009', '100', 'queued', ${db.sql.json(payload as never)}) RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() + make_interval(secs => ${LEASE_SECONDS}) FROM m
    RETURNING webhook_message_id::text AS id, lease_until`;
  return { entry: { rowId: row!.id, source: 'whatsapp', messageId, payload, traceparent: '', leaseStartedAtMs: Date.now() }, leaseEnd: row!.lease_until };
}

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
  const through = await startProxyFor(TEST_AMQP_URL, 5672);
  proxy = through.proxy;
  proxiedUrl = through.url;
}, 30_000);

afterAll(async () => {
  proxy.setMode('forward');
  for (const relay of relays) await relay.stop();
  for (const broker of brokers) await broker.close();
  await probe.deleteTopology(topology);
  await probe.close();
  await proxy.close();
  await db.drop();
}, 30_000);

it('keeps a message unanswered for longer than its lease from a second copy, while its channel is open', async () => {
  const owner = relayOn(await brokerAt(proxiedUrl));
  const other = relayOn(await brokerAt(TEST_AMQP_URL));
  const { entry, leaseEnd } = await committedMessage();

  proxy.setMode('blackhole');
  // Unanswered by the deadline: not confirmed, and not released either.
  expect(await owner.publishOwned([entry])).toBe(false);
  await waitFor('the row\'s first lease to have ended', async () =>
    (await db.sql<{ over: boolean }[]>`SELECT now() > ${leaseEnd}::timestamptz + interval '1 second' AS over`)[0]!.over, 15_000);
  expect(brokers[0]!.isConnected()).toBe(true);
  const [row] = await db.sql<{ attempts: number; leased: boolean }[]>`
    SELECT attempts, lease_until > now() AS leased FROM outbox WHERE webhook_message_id = ${entry.rowId}`;
  expect(row).toEqual({ attempts: 0, leased: true });
  expect(await other.sweepOnce()).toBe(0);

  // The broker catches up: its confirm settles the row, and one copy is queued.
  proxy.setMode('forward');
  await waitFor('the late confirm to empty the outbox', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0, 20_000);
  const copies = (await probe.drainWork(topology)).filter((message) => message.properties.messageId === `whatsapp:${entry.messageId}`);
  expect(copies).toHaveLength(1);
}, 60_000);
