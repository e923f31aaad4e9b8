import { bodyOf, openQueueProbe, type QueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { randomQueuePrefix, testEnv } from '../support/ingest';
import { spawnWagate, type ChildIngest } from '../support/process';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

let db: TestDatabase;
let probe: QueueProbe;
const prefix = randomQueuePrefix();
const topology = topologyFromConfig(loadConfig({ QUEUE_PREFIX: prefix }));

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
});

afterAll(async () => {
  await probe.deleteTopology(topology);
  await probe.close();
  await db.drop();
});

describe('several ingest processes', () => {
  let pods: ChildIngest[] = [];

  afterAll(async () => {
    await Promise.all(pods.map((pod) => pod.stop()));
  });

  it('record concurrent copies of a message once, count it once against the rate limit and queue it once', async () => {
    // 60 messages over 7 senders: at most 9 each, exactly the limit, so a copy counted twice
    // would push its sender over it.
    const env = testEnv(db.url, { QUEUE_PREFIX: prefix, RATE_LIMIT_MAX_REQUESTS: '9' });
    pods = await Promise.all([spawnWagate('ingest', env), spawnWagate('ingest', env), spawnWagate('ingest', env)]);
    const ids = Array.from({ length: 60 }, () => uniqueWamid());
    // Every id reaches all three pods at the same moment, one of them twice, as provider retries can.
    const replies = await Promise.all(
      ids.flatMap((id, i) =>
        [0, 1, 2, (i % 3) as 0 | 1 | 2].map((pod) => postMetaText(pods[pod]!.baseUrl, { id, from: `1555020${i % 7}` })),
      ),
    );
    expect(replies.filter((r) => r.status !== 200)).toEqual([]);

    const rows = await db.sql<{ message_id: string; duplicate_count: number }[]>`
      SELECT message_id, duplicate_count FROM webhook_messages ORDER BY message_id`;
    expect(rows.map((r) => r.message_id)).toEqual([...ids].sort());
    expect(rows.every((r) => r.duplicate_count === 3)).toBe(true);
    const statuses = await db.sql<{ status: string }[]>`SELECT DISTINCT status FROM webhook_messages`;
    expect(statuses.map((r) => r.status)).toEqual(['queued']);

    // Copies are not the customer's doing: each sender's counter moved once per distinct message.
    const counters = await db.sql<{ phone_number: string; request_count: number; total_requests: number }[]>`
      SELECT phone_number, request_count, total_requests::integer AS total_requests FROM webhook_rate_limits ORDER BY phone_number`;
    const perSender = new Map<string, number>();
    ids.forEach((_id, i) => perSender.set(`1555020${i % 7}`, (perSender.get(`1555020${i % 7}`) ?? 0) + 1));
    expect([...counters]).toEqual(
      [...perSender].sort(([a], [b]) => a.localeCompare(b)).map(([phone, n]) => ({ phone_number: phone, request_count: n, total_requests: n })),
    );

    await waitFor('the outbox to drain', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0);
    const queued = await probe.drainWork(topology);
    expect(queued.map((m) => bodyOf(m).messageId).sort()).toEqual([...ids].sort());
  });

  it('finish in-flight requests on SIGTERM, refuse new ones, then exit 0', async () => {
    const pod = pods[0]!;
    // Hold the ledger so that requests are provably in flight when the signal arrives.
    const lock = await db.sql.reserve();
    await lock`BEGIN`;
    await lock`LOCK TABLE webhook_messages IN ACCESS EXCLUSIVE MODE`;
    const ids = Array.from({ length: 10 }, () => uniqueWamid());
    const inFlight = ids.map((id) => postMetaText(pod.baseUrl, { id }));
    await waitFor('ten requests in flight', async () =>
      /wagate_http_in_flight_requests\{role="ingest"\} 10\b/.test(await (await fetch(pod.metricsUrl)).text()),
    );
    pod.child.kill('SIGTERM');
    // Probe with a route the lock cannot hold, so the probe itself never becomes in-flight work.
    await waitFor('new connections to be refused', () => fetch(`${pod.baseUrl}/healthz`).then(() => false, () => true));
    await lock`ROLLBACK`;
    lock.release();
    const replies = await Promise.all(inFlight);
    expect(replies.map((r) => r.status)).toEqual(ids.map(() => 200));
    expect(await pod.exited).toBe(0);
    const recorded = await db.sql<{ message_id: string }[]>`SELECT message_id FROM webhook_messages WHERE message_id = ANY(${ids})`;
    expect(recorded).toHaveLength(10);
    expect(pod.logs.some((entry) => entry.msg === 'ingest stopped')).toBe(true);
  });
});
