import { releaseSender } from '../../src/ledger/release';
import type { QueueProbe } from '../support/amqp';
import type { TestDatabase } from '../support/database';
import { type TestIngest, useIngestSuite } from '../support/ingest';
import { metaEnvelope } from '../../src/webhooks/samples';
import { postMeta, postMetaText, postTwilio, twilioText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';
import { scrapeValue } from '../support/metrics';

let db: TestDatabase;
let ingest: TestIngest;
let probe: QueueProbe;

const PUBLIC_BASE_URL = 'https://shop.example.com';
const suite = useIngestSuite({
  RATE_LIMIT_WHATSAPP_MAX_REQUESTS: '3',
  RATE_LIMIT_TWILIO_MAX_REQUESTS: '2',
  REPLAY_WINDOW_SECONDS: '3600',
  RETENTION_DAYS: '1',
  PUBLIC_BASE_URL,
});
beforeAll(() => ({ db, ingest, probe } = suite));

const statuses = async (ids: string[]) =>
  (await db.sql<{ message_id: string; status: string }[]>`
    SELECT message_id, status FROM webhook_messages WHERE message_id = ANY(${ids}) ORDER BY id`).map((r) => r.status);

async function drainedIds(): Promise<string[]> {
  await waitFor('the outbox to empty', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0);
  return (await probe.drainWork(ingest.topology)).map((m) => String(m.properties.messageId));
}

describe('rate limits', () => {
  it('records messages past the limit as rate_limited, blocks the sender, and queues none of them', async () => {
    await drainedIds();
    const ids = Array.from({ length: 5 }, () => uniqueWamid());
    for (const id of ids) expect((await postMetaText(ingest.baseUrl, { id, from: '15550009001' })).status).toBe(200);
    expect(await statuses(ids)).toEqual(['queued', 'queued', 'queued', 'rate_limited', 'rate_limited']);
    const [limit] = await db.sql`SELECT request_count, is_blocked, violation_count, max_requests FROM webhook_rate_limits WHERE phone_number = '15550009001'`;
    expect(limit).toMatchObject({ request_count: 5, is_blocked: true, max_requests: 3 });
    expect(Number(limit!.violation_count)).toBe(2);
    expect((await db.sql`SELECT * FROM webhook_rate_limits WHERE is_blocked = TRUE`).length).toBe(1);
    expect((await drainedIds()).sort()).toEqual(ids.slice(0, 3).map((id) => `whatsapp:${id}`).sort());
  });

  it('starts a new window once the sender\'s has passed: the count starts again and the block is lifted without a release', async () => {
    const ids = Array.from({ length: 4 }, () => uniqueWamid());
    for (const id of ids) await postMetaText(ingest.baseUrl, { id, from: '15550009010' });
    expect(await statuses(ids)).toEqual(['queued', 'queued', 'queued', 'rate_limited']);
    // The window (60 minutes) began 61 minutes ago.
    await db.sql`UPDATE webhook_rate_limits SET window_start = now() - interval '61 minutes' WHERE phone_number = '15550009010'`;
    const later = uniqueWamid();
    await postMetaText(ingest.baseUrl, { id: later, from: '15550009010' });
    expect(await statuses([later])).toEqual(['queued']);
    const [limit] = await db.sql`SELECT request_count, is_blocked, blocked_at, total_requests::integer AS total_requests, window_start > now() - interval '1 minute' AS fresh
                                 FROM webhook_rate_limits WHERE phone_number = '15550009010'`;
    expect(limit).toMatchObject({ request_count: 1, is_blocked: false, blocked_at: null, total_requests: 5, fresh: true });
  });

  it('counts provider retries of the same message only once against the sender', async () => {
    const id = uniqueWamid();
    for (let i = 0; i < 5; i += 1) await postMetaText(ingest.baseUrl, { id, from: '15550009002' });
    const [limit] = await db.sql`SELECT request_count, is_blocked FROM webhook_rate_limits WHERE phone_number = '15550009002'`;
    expect(limit).toMatchObject({ request_count: 1, is_blocked: false });
  });

  it('keys the limit on the business-scoped user id when Meta sends one', async () => {
    const userId = 'US.99887766554433221100';
    const ids = Array.from({ length: 4 }, () => uniqueWamid());
    // The same person seen under two phone numbers is still one sender.
    for (const [index, id] of ids.entries()) await postMetaText(ingest.baseUrl, { id, from: `1555000910${index}`, userId });
    expect(await statuses(ids)).toEqual(['queued', 'queued', 'queued', 'rate_limited']);
  });

  it('judges concurrent requests from one sender against one counter', async () => {
    const ids = Array.from({ length: 12 }, () => uniqueWamid());
    const replies = await Promise.all(ids.map((id) => postMetaText(ingest.baseUrl, { id, from: '15550009003' })));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    const all = await statuses(ids);
    expect(all.filter((s) => s === 'queued')).toHaveLength(3);
    expect(all.filter((s) => s === 'rate_limited')).toHaveLength(9);
  });

  it('release re-queues the sender’s rate_limited messages and clears the block', async () => {
    await drainedIds();
    const ids = Array.from({ length: 4 }, () => uniqueWamid());
    for (const id of ids) await postMetaText(ingest.baseUrl, { id, from: '15550009004' });
    expect(await statuses(ids)).toEqual(['queued', 'queued', 'queued', 'rate_limited']);
    await drainedIds();
    expect(await releaseSender(db.sql, '15550009004')).toMatchObject({ released: 1, withoutContent: 0 });
    // The running ingest's outbox relay publishes the released message.
    const published = await waitFor('the released message to be published', async () => {
      const got = await drainedIds();
      return got.length > 0 ? got : null;
    });
    expect(published).toEqual([`whatsapp:${ids[3]}`]);
    expect(await statuses(ids)).toEqual(['queued', 'queued', 'queued', 'queued']);
    const [limit] = await db.sql`SELECT is_blocked FROM webhook_rate_limits WHERE phone_number = '15550009004'`;
    expect(limit!.is_blocked).toBe(false);
    expect(await releaseSender(db.sql, '15550009004')).toMatchObject({ released: 0, withoutContent: 0 });
  });

  it('release by phone number finds a sender whose limit is keyed on Meta\'s user id', async () => {
    await drainedIds();
    const userId = 'US.11223344556677889900';
    const ids = Array.from({ length: 4 }, () => uniqueWamid());
    for (const id of ids) await postMetaText(ingest.baseUrl, { id, from: '15550009005', userId });
    expect(await statuses(ids)).toEqual(['queued', 'queued', 'queued', 'rate_limited']);
    const [blocked] = await db.sql`SELECT is_blocked FROM webhook_rate_limits WHERE phone_number = ${userId}`;
    expect(blocked!.is_blocked).toBe(true);
    await drainedIds();

    expect(await releaseSender(db.sql, '+15550009005')).toMatchObject({ released: 1, withoutContent: 0 });
    const [cleared] = await db.sql`SELECT is_blocked, request_count FROM webhook_rate_limits WHERE phone_number = ${userId}`;
    expect(cleared).toMatchObject({ is_blocked: false, request_count: 0 });
    const published = await waitFor('the released message to be published', async () => {
      const got = await drainedIds();
      return got.length > 0 ? got : null;
    });
    expect(published).toEqual([`whatsapp:${ids[3]}`]);
  });
});

describe('rate limits for Twilio', () => {
  it('applies the per-source limit, and release finds the sender by any form of the number', async () => {
    await drainedIds();
    const sids = Array.from({ length: 3 }, (_, i) => `SM${'0'.repeat(30)}${i}${Date.now() % 10}`);
    for (const sid of sids) {
      const reply = await postTwilio(ingest.baseUrl, twilioText('1 coke', 'whatsapp:+15550009020', sid), { publicBaseUrl: PUBLIC_BASE_URL });
      expect(reply.status).toBe(200);
    }
    expect(await statuses(sids)).toEqual(['queued', 'queued', 'rate_limited']);
    const [limit] = await db.sql`SELECT max_requests, is_blocked FROM webhook_rate_limits WHERE phone_number = 'whatsapp:+15550009020'`;
    expect(limit).toMatchObject({ max_requests: 2, is_blocked: true });
    await drainedIds();

    // Operators type the number as they know it, not as Twilio writes it.
    expect(await releaseSender(db.sql, '+15550009020')).toMatchObject({ released: 1, withoutContent: 0 });
    expect(await statuses(sids)).toEqual(['queued', 'queued', 'queued']);
    const [cleared] = await db.sql`SELECT is_blocked FROM webhook_rate_limits WHERE phone_number = 'whatsapp:+15550009020'`;
    expect(cleared!.is_blocked).toBe(false);
    const published = await waitFor('the released message to be published', async () => {
      const got = await drainedIds();
      return got.length > 0 ? got : null;
    });
    expect(published).toEqual([`twilio:${sids[2]}`]);
  });
});

describe('replay window', () => {
  it('records a message older than the window as replay_rejected and does not queue it', async () => {
    await drainedIds();
    const old = uniqueWamid();
    const future = uniqueWamid();
    const inside = uniqueWamid();
    const now = Math.floor(Date.now() / 1000);
    expect((await postMetaText(ingest.baseUrl, { id: old, from: '15550009010', timestamp: now - 3601 })).status).toBe(200);
    expect((await postMetaText(ingest.baseUrl, { id: future, from: '15550009011', timestamp: now + 400 })).status).toBe(200);
    expect((await postMetaText(ingest.baseUrl, { id: inside, from: '15550009012', timestamp: now - 3500 })).status).toBe(200);
    expect(await statuses([old, future, inside])).toEqual(['replay_rejected', 'replay_rejected', 'queued']);
    expect(await drainedIds()).toEqual([`whatsapp:${inside}`]);
  });

  it('answers a receipt older than the window without recording it, so a replay after cleanup counts nothing twice', async () => {
    const now = Math.floor(Date.now() / 1000);
    const receipt = (id: string, timestamp: number) =>
      metaEnvelope([{ statuses: [{ id, status: 'delivered', timestamp: String(timestamp), recipient_id: '15550009014' }] }]);
    const [old, inside] = [uniqueWamid(), uniqueWamid()];
    const counted = (outcome: string) => scrapeValue(ingest.metricsUrl, 'wagate_webhook_events_total', { source: 'whatsapp', outcome });
    const [staleBefore, messagesBefore] = [await counted('status_replay_rejected'), await counted('replay_rejected')];
    expect((await postMeta(ingest.baseUrl, receipt(old, now - 3601))).status).toBe(200);
    expect((await postMeta(ingest.baseUrl, receipt(inside, now - 3500))).status).toBe(200);
    const recorded = await db.sql<{ message_id: string }[]>`SELECT message_id FROM message_statuses WHERE message_id = ANY(${[old, inside]})`;
    expect(recorded.map((row) => row.message_id)).toEqual([inside]);
    // Counted as a receipt, not as a message: the duplicate rate's denominator counts messages.
    expect(await counted('status_replay_rejected')).toBe(staleBefore + 1);
    expect(await counted('replay_rejected')).toBe(messagesBefore);
  });

  it('answers a replay of a recorded message as a duplicate', async () => {
    const id = uniqueWamid();
    await postMetaText(ingest.baseUrl, { id, from: '15550009013' });
    expect((await postMetaText(ingest.baseUrl, { id, from: '15550009013' })).status).toBe(200);
    const [row] = await db.sql`SELECT duplicate_count FROM webhook_messages WHERE message_id = ${id}`;
    expect(row!.duplicate_count).toBe(1);
  });
});
