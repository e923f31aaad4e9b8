import amqp from 'amqplib';
import { shardOf } from '../../src/queue/topology';
import { openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startTestIngest, type TestIngest } from '../support/ingest';
import { waitFor } from '../support/wait';

/**
 * A shard queue deleted under a live connection (an operator's mistake): every publish to it
 * comes back, and its rows stay in the outbox. More of them than a sweep claims at once sit
 * at the head of the outbox; the rows behind them must still be published.
 */
const REFUSED = 600;
const ROUTABLE = 100;

let db: TestDatabase;
let probe: QueueProbe;
let ingest: TestIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
  ingest = await startTestIngest(db.url, { OUTBOX_POLL_MS: '50' });
  await ingest.broker.waitUntilConnected(10_000);
}, 60_000);

afterAll(async () => {
  await ingest.stop();
  await probe.deleteTopology(ingest.topology);
  await probe.close();
  await db.drop();
}, 60_000);

/** Senders whose shard is (or is not) the given one. */
function senders(count: number, onShard: (shard: number) => boolean): string[] {
  const found: string[] = [];
  for (let n = 0; found.length < count; n += 1) {
    const sender = `1555${String(n).padStart(7, '0')}`;
    if (onShard(shardOf(sender, ingest.topology.shards.length))) found.push(sender);
  }
  return found;
}

async function backlog(fromSenders: string[], tag: string): Promise<void> {
  const ids = fromSenders.map((_, index) => `wamid.returned.${tag}.${index}`);
  await db.sql`
    WITH messages AS (
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, message_type, status, payload)
      SELECT 'whatsapp', m.id, m.sender, m.sender, '106540352242922', 'text', 'queued',
             jsonb_build_object('v', 1, 'source', 'whatsapp', 'messageId', m.id, 'from', m.sender, 'senderKey', m.sender,
               'business', '106540352242922', 'contactName', NULL, 'type', 'text', 'timestampSeconds', NULL,
               'receivedAt', '2026-12-01T10:00:00.000Z', 'content', jsonb_build_object('text', jsonb_build_object('body', '1 coke')))
      FROM unnest(${ids}::text[], ${fromSenders}::text[]) WITH ORDINALITY AS m(id, sender, n)
      ORDER BY m.n
      RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() - interval '1 hour' FROM messages`;
}

it('publishes the rows behind a head of rows the broker keeps returning, and keeps the returned ones', async () => {
  const connection = await amqp.connect(TEST_AMQP_URL);
  const channel = await connection.createChannel();
  await channel.deleteQueue(ingest.topology.shards[0]!.queue);
  await connection.close();

  await backlog(senders(REFUSED, (shard) => shard === 0), 'refused');
  await backlog(senders(ROUTABLE, (shard) => shard !== 0), 'routable');
  const left = async (tag: string) =>
    (await db.sql<{ n: number }[]>`
      SELECT count(*)::integer AS n FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id
      WHERE m.message_id LIKE ${`wamid.returned.${tag}.%`}`)[0]!.n;
  await waitFor('the routable rows behind the refused ones to be published', async () => (await left('routable')) === 0, 30_000);
  expect(await left('refused')).toBe(REFUSED);
  let queued = 0;
  for (const shard of ingest.topology.shards.slice(1)) queued += await probe.readyCount(shard.queue);
  expect(queued).toBe(ROUTABLE);
}, 90_000);
