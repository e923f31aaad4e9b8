import { bodyOf, openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startTestIngest, type TestIngest } from '../support/ingest';
import { scrapeValue } from '../support/metrics';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * ACK_AFTER=publish: a 200 waits for the broker's confirm of the request's messages, at most
 * ACK_PUBLISH_TIMEOUT_MS, and is a 200 from the outbox when the broker is away or slow.
 */
/** Far above a confirm on a busy machine, whose delay the positive cases must not reach. */
const PUBLISH_WAIT_MS = 2000;

let db: TestDatabase;
let probe: QueueProbe;
let proxy: TcpProxy;
let ingest: TestIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
  const proxied = await startProxyFor(TEST_AMQP_URL, 5672);
  proxy = proxied.proxy;
  ingest = await startTestIngest(db.url, { AMQP_URL: proxied.url, ACK_AFTER: 'publish', ACK_PUBLISH_TIMEOUT_MS: String(PUBLISH_WAIT_MS) });
  await ingest.broker.waitUntilConnected(10000);
});

afterAll(async () => {
  proxy.setMode('forward');
  await ingest.stop();
  await probe.deleteTopology(ingest.topology);
  await proxy.close();
  await probe.close();
  await db.drop();
});

const waits = (result: string) => scrapeValue(ingest.metricsUrl, 'wagate_ack_after_publish_total', { result });

it('answers 200 once the message is in its work queue', async () => {
  const before = await waits('confirmed');
  const id = uniqueWamid();
  expect((await postMetaText(ingest.baseUrl, { id })).status).toBe(200);
  // Confirmed before the answer, so it is already there, with no wait.
  const published = await probe.drainWork(ingest.topology);
  expect(published.map((m) => bodyOf(m).messageId)).toEqual([id]);
  expect((await waits('confirmed')) - before).toBe(1);
});

it('answers a duplicate at once, without waiting for a publish', async () => {
  const id = uniqueWamid();
  expect((await postMetaText(ingest.baseUrl, { id })).status).toBe(200);
  await probe.drainWork(ingest.topology);
  const before = { confirmed: await waits('confirmed'), unconfirmed: await waits('unconfirmed'), timedOut: await waits('timed_out') };
  expect((await postMetaText(ingest.baseUrl, { id })).status).toBe(200);
  expect({ confirmed: await waits('confirmed'), unconfirmed: await waits('unconfirmed'), timedOut: await waits('timed_out') }).toEqual(before);
});

it('answers 200 from the outbox at once while the broker is down, and publishes once it is back', async () => {
  proxy.setMode('refuse');
  await waitFor('the broker to be seen as down', () => !ingest.broker.isConnected());
  const before = await waits('unconfirmed');
  const id = uniqueWamid();
  expect((await postMetaText(ingest.baseUrl, { id })).status).toBe(200);
  expect((await waits('unconfirmed')) - before).toBe(1);
  proxy.setMode('forward');
  await waitFor('the outbox to drain', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0, 20000);
  expect((await probe.drainWork(ingest.topology)).map((m) => bodyOf(m).messageId)).toEqual([id]);
});

it('answers 200 after ACK_PUBLISH_TIMEOUT_MS when the broker does not confirm', async () => {
  await ingest.broker.waitUntilConnected(10000);
  // A hung broker: the connection stays open, nothing comes back.
  proxy.setMode('blackhole');
  const before = await waits('timed_out');
  const started = performance.now();
  const reply = await postMetaText(ingest.baseUrl, {});
  expect(reply.status).toBe(200);
  expect(performance.now() - started).toBeGreaterThanOrEqual(PUBLISH_WAIT_MS - 5);
  expect((await waits('timed_out')) - before).toBe(1);
  proxy.setMode('forward');
});
