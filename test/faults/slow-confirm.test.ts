import { openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startTestIngest, type TestIngest } from '../support/ingest';
import { scrapeValue } from '../support/metrics';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait';
import { postMetaText, uniqueWamid } from '../support/webhooks';

/**
 * A broker that confirms late (an alarm, a quorum queue electing a leader) but does confirm:
 * the message was routed, so publishing it again would queue a second copy although no process
 * died. Its outbox row keeps its lease past the confirm deadline, and the late confirm settles it.
 */
const CONFIRM_TIMEOUT_MS = 300;

let db: TestDatabase;
let probe: QueueProbe;
let proxy: TcpProxy;
let ingest: TestIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
  const through = await startProxyFor(TEST_AMQP_URL, 5672);
  proxy = through.proxy;
  ingest = await startTestIngest(db.url, { AMQP_URL: through.url, PUBLISH_CONFIRM_TIMEOUT_MS: String(CONFIRM_TIMEOUT_MS), OUTBOX_POLL_MS: '50' });
  await ingest.broker.waitUntilConnected(10_000);
}, 60_000);

afterAll(async () => {
  proxy.setMode('forward');
  await ingest?.stop();
  await probe.deleteTopology(ingest.topology);
  await probe.close();
  await proxy.close();
  await db.drop();
}, 60_000);

it('publishes a message once when its confirm comes after the deadline', async () => {
  proxy.setMode('blackhole');
  const id = uniqueWamid();
  const reply = await postMetaText(ingest.baseUrl, { id, text: '2 coke' });
  expect(reply.status).toBe(200);
  await waitFor('the confirm deadline to pass', async () => (await scrapeValue(ingest.metricsUrl, 'wagate_publish_failures_total')) >= 1, 15_000);

  // Not released to the sweep: still leased to its owner, and claimed by no sweep.
  const [row] = await db.sql<{ attempts: number; leased: boolean }[]>`
    SELECT o.attempts, o.lease_until > now() + interval '15 seconds' AS leased
    FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id WHERE m.message_id = ${id}`;
  expect(row).toEqual({ attempts: 0, leased: true });

  proxy.setMode('forward');
  await waitFor('the late confirm to empty the outbox', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0, 20_000);
  const copies = (await probe.drainWork(ingest.topology)).filter((message) => message.properties.messageId === `whatsapp:${id}`);
  expect(copies).toHaveLength(1);
}, 90_000);
