import { createTestDatabase, withPort, type TestDatabase } from '../support/database';
import { startTestIngest, type TestIngest } from '../support/ingest';
import { openQueueProbe, type QueueProbe } from '../support/amqp';
import { startJudgingProxy, type JudgingProxy } from '../support/judging-proxy';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * The ledger's statement commits, and its answer reaches the ingest only after the requests'
 * deadline (a stalled link, a database answering late): the provider got its 503, and retries
 * into a duplicate, but the message is queued. It goes to the broker as soon as the answer
 * comes, ahead of what its sender sends next. Before, nothing published it until its outbox
 * lease ran out and a sweep took it, by then behind the sender's later messages: a "cancel"
 * could reach the worker before the order it cancels.
 */
const SENDER = '15550600001';
/** Far longer than the test waits: only the late answer, not the lease, can publish the message. */
const OUTBOX_LEASE_SECONDS = '300';

let db: TestDatabase;
let proxy: JudgingProxy;
let ingest: TestIngest;
let probe: QueueProbe;
/** The message whose commit answer the proxy holds back, once it is set. */
let heldMessageId: string | null = null;

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await startJudgingProxy(new URL(db.url), 5432, {
    fromClient(chunk, notes) {
      if (heldMessageId !== null && chunk.includes(heldMessageId)) notes.add('recording the held message');
      return 'pass';
    },
    fromServer(chunk, notes) {
      return heldMessageId !== null && notes.has('recording the held message') ? 'hold' : 'pass';
    },
  });
  // A deadline of 3 s (the statement timeout plus 2 s): the held answer outlasts it.
  ingest = await startTestIngest(withPort(db.url, proxy.port), { DB_STATEMENT_TIMEOUT_MS: '1000', OUTBOX_LEASE_SECONDS });
  await ingest.broker.waitUntilConnected(10_000);
  probe = await openQueueProbe();
}, 60_000);

afterAll(async () => {
  proxy?.release();
  await ingest?.stop();
  await probe?.deleteTopology(ingest.topology);
  await probe?.close();
  await proxy?.close();
  await db?.drop();
});

const statusOf = async (id: string) =>
  (await db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

it('publishes a message whose commit answered after its deadline as soon as the answer comes, ahead of the sender’s next message', async () => {
  const order = uniqueWamid();
  heldMessageId = order;
  const late = await postMetaText(ingest.baseUrl, { id: order, from: SENDER, text: '2 margherita' });
  expect(late.status).toBe(503);
  // Committed all the same: Postgres sent its answer after the commit, and the proxy holds it.
  expect(await statusOf(order)).toBe('queued');
  expect(proxy.held()).toBeGreaterThan(0);
  expect(await probe.drainWork(ingest.topology)).toEqual([]);

  heldMessageId = null;
  proxy.release();
  await waitFor('the late-answered message to be published and its outbox row deleted', async () =>
    (await db.sql`SELECT 1 FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id WHERE m.message_id = ${order}`).length === 0);

  // The provider's retry is a duplicate, and the sender's next message queues behind the order.
  expect((await postMetaText(ingest.baseUrl, { id: order, from: SENDER, text: '2 margherita' })).status).toBe(200);
  const cancel = uniqueWamid();
  expect((await postMetaText(ingest.baseUrl, { id: cancel, from: SENDER, text: 'cancel' })).status).toBe(200);
  await waitFor('the next message to be published', async () =>
    (await db.sql`SELECT 1 FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id WHERE m.message_id = ${cancel}`).length === 0);
  expect((await probe.drainWork(ingest.topology)).map((message) => message.properties.messageId))
    .toEqual([`whatsapp:${order}`, `whatsapp:${cancel}`]);
  const [duplicates] = await db.sql<{ duplicate_count: number }[]>`SELECT duplicate_count FROM webhook_messages WHERE message_id = ${order}`;
  expect(duplicates!.duplicate_count).toBe(1);
  // Counted as recorded late, apart from the request's 503; the retry counts as a duplicate.
  const counted = async (name: 'ledgerLateCommits' | 'webhookEvents', outcome: string) =>
    (await ingest.metrics[name].get()).values.find((value) => value.labels.source === 'whatsapp' && value.labels.outcome === outcome)?.value ?? 0;
  expect(await counted('ledgerLateCommits', 'queued')).toBe(1);
  expect(await counted('webhookEvents', 'unavailable')).toBe(1);
  expect(await counted('webhookEvents', 'duplicate')).toBe(1);
});
