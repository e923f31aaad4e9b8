import { createTestDatabase, type TestDatabase } from '../support/database';
import { ADMIN_TOKEN, startTestIngest, type TestIngest } from '../support/ingest';
import { openQueueProbe } from '../support/amqp';
import { scrapeValue } from '../support/metrics';
import { startOwnRabbitmq, type OwnRabbitmq } from '../support/own-rabbitmq';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A RabbitMQ memory or disk alarm blocks every publishing connection: the broker reads nothing
 * more, and says so with connection.blocked. The ingest keeps acknowledging from the outbox and
 * publishes nothing meanwhile: rows written into a blocked socket only pile up in the process
 * (a long alarm at full traffic would end in an out-of-memory kill), and after each lease
 * period a sweep used to write them again, one more copy per period. The alarm is raised on a
 * node of this file's own: on the shared broker it would block every other test file too.
 */
const LEASE_SECONDS = 5;
const WHILE_BLOCKED = 20;

let rabbitmq: OwnRabbitmq;
let db: TestDatabase;
let ingest: TestIngest;

beforeAll(async () => {
  rabbitmq = await startOwnRabbitmq();
  db = await createTestDatabase();
  ingest = await startTestIngest(db.url, {
    AMQP_URL: rabbitmq.url,
    OUTBOX_LEASE_SECONDS: String(LEASE_SECONDS),
    PUBLISH_CONFIRM_TIMEOUT_MS: '300',
  });
  await ingest.broker.waitUntilConnected(10_000);
}, 120_000);

afterAll(async () => {
  // The node last and whatever failed before it: a node left running outlives the test run.
  try {
    await ingest?.stop();
    await db?.drop();
  } finally {
    await rabbitmq?.stop();
  }
}, 120_000);

const outboxRows = () => db.sql<{ message_id: string; attempts: number }[]>`
  SELECT m.message_id, o.attempts FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id`;
const blockedGauge = () => scrapeValue(ingest.metricsUrl, 'wagate_broker_blocked');

test('under a broker alarm, ingest acks from the outbox, publishes nothing more, and after it each message arrives once', async () => {
  // The path works before the alarm.
  const before = uniqueWamid();
  expect((await postMetaText(ingest.baseUrl, { id: before, from: '15550400001' })).status).toBe(200);
  await waitFor('the first message to leave the outbox', async () => (await outboxRows()).length === 0);

  await rabbitmq.setMemoryAlarm(true);
  // The first publish after the alarm is what the broker blocks the connection on.
  const discovering = uniqueWamid();
  expect((await postMetaText(ingest.baseUrl, { id: discovering, from: '15550400002' })).status).toBe(200);
  await waitFor('the ingest to see its connection blocked', async () => (await blockedGauge()) === 1);

  // The broker reads nothing more from the blocked connection, so a question about a queue's
  // depth would wait out its timeout, queue by queue: stats say the depths are unknown instead.
  // The deadline is far beyond a database read's time and far below those timeouts' sum.
  const stats = await fetch(`${ingest.baseUrl}/api/v1/whatsapp-hardened/stats`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    signal: AbortSignal.timeout(10_000),
  });
  expect(stats.status).toBe(200);
  expect(await stats.json()).toMatchObject({ queueDepth: null, deadLetterDepth: null });
  // Ready (the outbox covers the alarm), and the body says why nothing is published.
  const readiness = await fetch(`${ingest.baseUrl}/readyz`);
  expect(readiness.status).toBe(200);
  expect(await readiness.json()).toMatchObject({ broker: expect.stringMatching(/^blocked by a resource alarm/) });

  const blockedIds: string[] = [];
  for (let n = 0; n < WHILE_BLOCKED; n += 1) {
    const id = uniqueWamid();
    blockedIds.push(id);
    expect((await postMetaText(ingest.baseUrl, { id, from: `155504001${String(n).padStart(2, '0')}` })).status).toBe(200);
  }
  const postedAt = (await db.sql<{ now: Date }[]>`SELECT now()`)[0]!.now;
  // Past a whole lease period of every row (the sweep polls every 100 ms): a relay that
  // publishes into the blocked connection has claimed each row at least once by then.
  await waitFor('one lease period to pass', async () => {
    const [row] = await db.sql<{ passed: boolean }[]>`SELECT now() > ${postedAt}::timestamptz + make_interval(secs => ${LEASE_SECONDS + 1}) AS passed`;
    return row!.passed;
  }, (LEASE_SECONDS + 10) * 1000);
  const waiting = await outboxRows();
  expect(waiting.map((row) => row.message_id).sort()).toEqual([discovering, ...blockedIds].sort());
  // No sweep claimed any of them while the broker was blocked.
  expect(waiting.filter((row) => row.attempts > 0)).toEqual([]);
  expect(await blockedGauge()).toBe(1);

  await rabbitmq.setMemoryAlarm(false);
  await waitFor('the outbox to empty after the alarm', async () => (await outboxRows()).length === 0, 30_000);
  expect(await blockedGauge()).toBe(0);

  const probe = await openQueueProbe(rabbitmq.url);
  try {
    const copies = new Map<string, number>();
    for (const message of await probe.drainWork(ingest.topology)) {
      const { messageId } = JSON.parse(message.content.toString()) as { messageId: string };
      copies.set(messageId, (copies.get(messageId) ?? 0) + 1);
    }
    // Each message posted while blocked was published once, after the alarm.
    expect(blockedIds.map((id) => copies.get(id))).toEqual(blockedIds.map(() => 1));
    // The one written into the connection as it was blocked arrives too (a sweep may have
    // published it again before its late confirm came back; the worker's claim takes one).
    expect(copies.get(discovering)).toBeGreaterThanOrEqual(1);
    expect(copies.get(before)).toBe(1);
  } finally {
    await probe.close();
  }
});
