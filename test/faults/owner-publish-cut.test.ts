import { loadConfig } from '../../src/config';
import { createOutboxRelay } from '../../src/ledger/outbox-relay';
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
 * A broker that stops reading with the connection up (a quorum queue electing a leader under
 * load, no connection.blocked) cuts an owner publish at its deadline, its last rows unwritten.
 * An owner batch queued behind it must not write the same sender's next message ahead of them.
 */
const topology = topologyFromConfig(loadConfig(testEnv('')));
const log = createLogger('silent', 'wagate-test');
const SENDER = '15550800091';
/** Enough 32 KiB messages to fill amqplib's buffer once the socket buffers on both sides of the proxy are full. */
const FIRST_BATCH = 1500;
const PADDING = 'x'.repeat(32 * 1024);
/**
 * Long enough for the first batch to fill the socket before its deadline on a busy machine
 * (serialising 48 MiB takes a while): cut off first, it never waits for a drain.
 */
const CONFIRM_TIMEOUT_MS = 5000;

let db: TestDatabase;
let probe: QueueProbe;
let proxy: TcpProxy;
let broker: Broker;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
  const proxied = await startProxyFor(TEST_AMQP_URL, 5672);
  proxy = proxied.proxy;
  broker = createBroker({ url: proxied.url, name: 'wagate-test owner publish cut', log, setup: (channel) => assertTopology(channel, topology) });
  await broker.waitUntilConnected(30_000);
}, 60_000);

afterAll(async () => {
  proxy.setMode('forward');
  await broker.close();
  await proxy.close();
  await probe.deleteTopology(topology);
  await probe.close();
  await db.drop();
}, 60_000);

/** Rows as the ledger commits them, leased to this process; the owner publishes a padded copy, a sweep the stored one. */
async function commit(texts: string[]): Promise<QueuedEntry[]> {
  const payloads = texts.map((text, index) => message(`wamid.cut.${Date.now()}.${index}.${text.replace(/\W/g, '')}`, text));
  const rows = await db.sql<{ id: string }[]>`
    WITH m AS (INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
               SELECT 'whatsapp', p->>'messageId', ${SENDER}, ${SENDER}, '100', 'queued', p
               FROM jsonb_array_elements(${db.sql.json(payloads as never)}) WITH ORDINALITY AS a(p, n) ORDER BY n RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() + interval '30 seconds' FROM m ORDER BY id RETURNING webhook_message_id::text AS id`;
  return rows.map((row, index) => ({
    rowId: row.id,
    source: 'whatsapp',
    messageId: payloads[index]!.messageId,
    payload: { ...payloads[index]!, content: { text: { body: texts[index]! }, padding: PADDING } },
    traceparent: '',
    leaseStartedAtMs: Date.now(),
  }));
}

function message(messageId: string, text: string): QueueMessage {
  return {
    v: 1, source: 'whatsapp', messageId, from: SENDER, senderKey: SENDER, business: '100',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { text: { body: text } },
  };
}

it('hands a sender\'s next message to the sweep, behind the rows an owner publish left unwritten at its deadline', async () => {
  const relay = createOutboxRelay({
    sql: db.sql, publisher: createPublisher(broker, CONFIRM_TIMEOUT_MS), topology, canPublish: () => true, leaseSeconds: 30,
    confirmTimeoutMs: CONFIRM_TIMEOUT_MS, pollMs: 60_000, publishLingerMs: 0, log, metrics: createMetrics('ingest', { processMetrics: false }),
  });
  try {
    const first = await commit(Array.from({ length: FIRST_BATCH }, (_, index) => `order ${String(index).padStart(4, '0')}`));
    const [next] = await commit(['cancel']);
    // The broker stops reading: the first batch fills the socket and waits for a drain that never comes.
    proxy.setMode('blackhole');
    const firstPublish = relay.publishOwned(first);
    await waitFor('the first batch to wait for the socket', async () => (broker.channel()?.listenerCount('drain') ?? 0) > 0);
    const nextPublish = relay.publishOwned([next!]);
    expect([await firstPublish, await nextPublish]).toEqual([false, false]);
    // Written, "cancel" would be awaiting its confirm, its lease renewed; handed back, a sweep takes it now.
    const [row] = await db.sql<{ due: boolean }[]>`SELECT lease_until <= now() AS due FROM outbox WHERE webhook_message_id = ${next!.rowId}`;
    expect(row).toEqual({ due: true });

    proxy.setMode('forward');
    await waitFor('the outbox to empty', async () => {
      await relay.sweepOnce();
      return (await db.sql`SELECT 1 FROM outbox LIMIT 1`).length === 0;
    }, 60_000);
    const texts = (await probe.drainWork(topology)).map((delivered) => (JSON.parse(delivered.content.toString()) as { content: { text: { body: string } } }).content.text.body);
    expect(texts.length).toBe(FIRST_BATCH + 1);
    expect(texts.at(-1)).toBe('cancel');
    expect(texts.slice(0, -1)).toEqual([...texts.slice(0, -1)].sort());
  } finally {
    await relay.stop();
  }
}, 120_000);
