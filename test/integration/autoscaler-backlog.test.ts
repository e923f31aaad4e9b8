import { countBacklog } from '../../src/autoscaler/backlog';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * The autoscaler's backlog counts ready messages (SPEC §10): in a queue or its outbox, or held
 * by a worker. A message parked in a retry tier until the provider lets it try again is not
 * ready, so a provider outage does not send the workers to their maximum to wait.
 */
let pipeline: Pipeline;

beforeAll(async () => {
  // Tiers far shorter than the Retry-After below: the parked message comes back and waits out
  // the provider's time again several times, as it does in production behind a long outage.
  pipeline = await startPipeline({ RETRY_DELAYS_MS: '200,500' });
});

afterAll(async () => {
  await pipeline.stop();
});

const recordOf = async (id: string) =>
  (await pipeline.db.sql<{ status: string; last_error: string | null; waiting_until: Date | null; updated_at: Date }[]>`
    SELECT status, last_error, waiting_until, updated_at FROM webhook_messages WHERE message_id = ${id}`)[0];

test('a message waiting for a worker is backlog, and stops being once processed', async () => {
  const id = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550300001', text: '1 coke' });
  expect(await countBacklog(pipeline.db.sql)).toBe(1);
  await pipeline.startWorker();
  await waitFor('the message to be processed', async () => (await recordOf(id))?.status === 'processed');
  expect(await countBacklog(pipeline.db.sql)).toBe(0);
});

test('a message parked until the provider’s Retry-After is not backlog while it waits, however often it comes back', async () => {
  const id = uniqueWamid();
  pipeline.fake.behave({ kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 60 }, 1);
  const postedAt = Date.now();
  await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550300002', text: '1 coke' });
  const parked = await waitFor('the message to be parked in a retry tier', async () => {
    const record = await recordOf(id);
    return record?.status === 'queued' && record.last_error !== null ? record : undefined;
  });
  expect(parked.last_error).toMatch(/429/);
  // Due when the provider said, not when the (shorter) tier hands it back.
  expect(parked.waiting_until!.getTime()).toBeGreaterThanOrEqual(postedAt + 59_000);
  expect(await countBacklog(pipeline.db.sql)).toBe(0);

  // Back from the longest tier twice (each wait-out touches the row), parked again each time
  // with the same due time.
  let touched = parked.updated_at;
  for (const round of [1, 2]) {
    touched = await waitFor(`wait-out ${round}`, async () => {
      const record = await recordOf(id);
      return record!.updated_at.getTime() !== touched.getTime() ? record!.updated_at : undefined;
    });
    const record = await recordOf(id);
    expect(record).toMatchObject({ status: 'queued', waiting_until: parked.waiting_until });
    expect(await countBacklog(pipeline.db.sql)).toBe(0);
  }

  // A fresh message beside it is backlog again while it is ready.
  const fresh = uniqueWamid();
  const worker = pipeline.workers[0]!;
  await worker.stop();
  pipeline.workers.length = 0;
  await postMetaText(pipeline.ingest.baseUrl, { id: fresh, from: '15550300003', text: '1 coke' });
  expect(await countBacklog(pipeline.db.sql)).toBe(1);
});

test('messages their relay cannot publish (RabbitMQ away) are not backlog until published, however fresh', async () => {
  // The messages of the tests before have left the outbox (their deletes are gathered): with a
  // row of theirs still there, the old row below would take them off the count too.
  await waitFor('the earlier messages to leave the outbox', async () => (await pipeline.db.sql`SELECT 1 FROM outbox`).length === 0);
  const before = await countBacklog(pipeline.db.sql);
  // Queued and in the outbox, as the ingest commits them.
  const queue = async (age: string) => {
    const id = uniqueWamid();
    await pipeline.db.sql`
      WITH m AS (INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, status)
                 VALUES ('whatsapp', ${id}, '15550300004', '15550300004', 'queued') RETURNING id)
      INSERT INTO outbox (webhook_message_id, lease_until, created_at) SELECT id, now() + interval '30 seconds', now() - ${age}::interval FROM m`;
    return id;
  };
  const published = (id: string) => pipeline.db.sql`DELETE FROM outbox WHERE webhook_message_id = (SELECT id FROM webhook_messages WHERE message_id = ${id})`;
  // A row of a moment ago, with the broker there, is on its way: backlog.
  const onItsWay = await queue('0 seconds');
  expect(await countBacklog(pipeline.db.sql)).toBe(before + 1);
  await published(onItsWay);

  // One a minute old says the relay cannot publish: neither it nor those taken in since count,
  // for at a high intake the last seconds' messages alone would hold the workers at their maximum.
  const unpublished = await queue('1 minute');
  const sinceThen = await Promise.all(['2 seconds', '0 seconds', '0 seconds'].map(queue));
  expect(await countBacklog(pipeline.db.sql)).toBe(before + 1);

  // The broker is back and the old row published: the rest are on their way, and backlog
  // like any queued message, as they stay once published.
  await published(unpublished);
  expect(await countBacklog(pipeline.db.sql)).toBe(before + 5);
  for (const id of sinceThen) await published(id);
  expect(await countBacklog(pipeline.db.sql)).toBe(before + 5);
});
