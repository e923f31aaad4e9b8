import { bodyOf, openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startTestIngest, type TestIngest } from '../support/ingest';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';
import { scrapeValue } from '../support/metrics';

let db: TestDatabase;
let probe: QueueProbe;

beforeAll(async () => {
  db = await createTestDatabase();
  probe = await openQueueProbe();
});

afterAll(async () => {
  await probe.close();
  await db.drop();
});

describe('RabbitMQ outage', () => {
  let proxy: TcpProxy;
  let ingest: TestIngest;

  beforeAll(async () => {
    const proxied = await startProxyFor(TEST_AMQP_URL, 5672);
    proxy = proxied.proxy;
    ingest = await startTestIngest(db.url, { AMQP_URL: proxied.url });
    await ingest.broker.waitUntilConnected(10000);
  });

  afterAll(async () => {
    await ingest.stop();
    await probe.deleteTopology(ingest.topology);
    await proxy.close();
  });

  it('still answers 200 from the outbox, then publishes each message once when the broker returns', async () => {
    proxy.setMode('refuse');
    await waitFor('the broker to be seen as down', () => !ingest.broker.isConnected());
    const ids = Array.from({ length: 20 }, () => uniqueWamid());
    const replies = await Promise.all(ids.map((id, i) => postMetaText(ingest.baseUrl, { id, from: `1555010${i}` })));
    expect(replies.map((r) => r.status)).toEqual(ids.map(() => 200));
    const ready = await (await fetch(`${ingest.baseUrl}/readyz`)).json();
    expect(ready).toMatchObject({ status: 'ready', postgres: 'ok', broker: 'disconnected' });
    const [outbox] = await db.sql<{ pending: number }[]>`SELECT count(*)::int AS pending FROM outbox`;
    expect(outbox!.pending).toBe(20);

    proxy.setMode('forward');
    await waitFor('the outbox to drain', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0, 20000);
    const published = await probe.drainWork(ingest.topology);
    expect(published.map((m) => bodyOf(m).messageId).sort()).toEqual([...ids].sort());
  });

  it('drops an outbox row whose message lost its content meanwhile, without holding up the others', async () => {
    proxy.setMode('refuse');
    await waitFor('the broker to be seen as down', () => !ingest.broker.isConnected());
    const ids = Array.from({ length: 5 }, () => uniqueWamid());
    for (const [i, id] of ids.entries()) expect((await postMetaText(ingest.baseUrl, { id, from: `1555011${i}` })).status).toBe(200);
    // What erasure or personal-data retention leaves: a queued row without its content.
    await db.sql`UPDATE webhook_messages SET status = 'erased', payload = NULL WHERE message_id = ${ids[2]!}`;

    proxy.setMode('forward');
    await waitFor('the outbox to drain', async () => (await db.sql`SELECT 1 FROM outbox`).length === 0, 20000);
    const published = await probe.drainWork(ingest.topology);
    expect(published.map((m) => bodyOf(m).messageId).sort()).toEqual(ids.filter((_, i) => i !== 2).sort());
  });
});

/** The ingest's statement timeout in the PostgreSQL outage tests. */
const OUTAGE_STATEMENT_TIMEOUT_MS = 500;
/** The longest a request waits on the ledger: the ingest's commit deadline, its statement timeout plus 2 s. */
const OUTAGE_COMMIT_DEADLINE_MS = OUTAGE_STATEMENT_TIMEOUT_MS + 2000;
/**
 * Four times the deadline: a loaded machine stays well inside it, and a request that waited on the
 * outage itself would not answer before the proxy forwards again, so it would not answer at all.
 */
const OUTAGE_ANSWER_BOUND_MS = 4 * OUTAGE_COMMIT_DEADLINE_MS;
/** The readiness probe gives Postgres 2 s (READY_CHECK_TIMEOUT_MS); three times that, for the same reason. */
const PROBE_ANSWER_BOUND_MS = 3 * 2000;

describe('PostgreSQL outage', () => {
  let proxy: TcpProxy;
  let ingest: TestIngest;

  beforeAll(async () => {
    const proxied = await startProxyFor(db.url, 5432);
    proxy = proxied.proxy;
    ingest = await startTestIngest(proxied.url, {
      DB_CONNECT_TIMEOUT_SECONDS: '1',
      DB_STATEMENT_TIMEOUT_MS: String(OUTAGE_STATEMENT_TIMEOUT_MS),
    });
    await ingest.broker.waitUntilConnected(10000);
  });

  afterAll(async () => {
    proxy.setMode('forward');
    await ingest.stop();
    await probe.deleteTopology(ingest.topology);
    await proxy.close();
  });

  it('answers 503 within seconds while the database refuses connections, and 200 once it is back', async () => {
    expect((await postMetaText(ingest.baseUrl, {})).status).toBe(200);
    proxy.setMode('refuse');
    const id = uniqueWamid();
    const started = Date.now();
    const reply = await postMetaText(ingest.baseUrl, { id });
    expect(reply.status).toBe(503);
    expect(reply.headers.get('retry-after')).toBeTruthy();
    // The contract: "503 within seconds". A refused connection is seen in milliseconds, and the
    // commit deadline bounds the rest.
    expect(Date.now() - started).toBeLessThan(OUTAGE_ANSWER_BOUND_MS);
    // Readiness shares one answer of Postgres for a second (a flood of /readyz sends no flood of queries).
    await waitFor('not ready', async () => (await fetch(`${ingest.baseUrl}/readyz`)).status === 503);
    // The same check at scrape time: a pod out of its Service is still scraped, so this is what alerts.
    expect(await scrapeValue(ingest.metricsUrl, 'wagate_ready')).toBe(0);

    proxy.setMode('forward');
    await waitFor('a 200 after recovery', async () => (await postMetaText(ingest.baseUrl, { id })).status === 200);
    await waitFor('ready again', async () => (await scrapeValue(ingest.metricsUrl, 'wagate_ready')) === 1);
    const [row] = await db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`;
    expect(row!.status).toBe('queued');
  });

  it('answers 503 within seconds when the database hangs without closing connections', async () => {
    proxy.setMode('blackhole');
    const started = Date.now();
    const reply = await postMetaText(ingest.baseUrl, {});
    expect(reply.status).toBe(503);
    // statement_timeout cannot help here; the client-side commit deadline does.
    expect(Date.now() - started).toBeLessThan(OUTAGE_ANSWER_BOUND_MS);
    // Readiness may still hold Postgres's answer of the second before the hang; each probe answers all the same.
    let slowestProbeMs = 0;
    await waitFor('not ready', async () => {
      const probeStarted = Date.now();
      const ready = await fetch(`${ingest.baseUrl}/readyz`);
      slowestProbeMs = Math.max(slowestProbeMs, Date.now() - probeStarted);
      return ready.status === 503 && ((await ready.json()) as { postgres?: string }).postgres === 'unavailable';
    });
    // The probe gives Postgres 2 s; a probe that waited on the hang itself would never answer.
    expect(slowestProbeMs).toBeLessThan(PROBE_ANSWER_BOUND_MS);
    proxy.setMode('forward');
    await waitFor('a 200 after the hang ends', async () => (await postMetaText(ingest.baseUrl, {})).status === 200);
  });
});

/** Locks the ledger table, so that the ingest's inserts wait on it until `release`. */
async function lockLedger(): Promise<{ release(): Promise<void> }> {
  const reserved = await db.sql.reserve();
  await reserved`BEGIN`;
  await reserved`LOCK TABLE webhook_messages IN ACCESS EXCLUSIVE MODE`;
  return {
    async release() {
      await reserved`ROLLBACK`;
      reserved.release();
    },
  };
}

describe('overload', () => {
  let ingest: TestIngest;

  beforeAll(async () => {
    // A statement timeout far longer than the test: the held requests stay in flight until the
    // test lets them go, however long a loaded machine takes over the refused one.
    ingest = await startTestIngest(db.url, { MAX_IN_FLIGHT: '2', DB_STATEMENT_TIMEOUT_MS: '60000' });
  });

  afterAll(async () => {
    await ingest.stop();
    await probe.deleteTopology(ingest.topology);
  });

  it('answers 503 at once beyond MAX_IN_FLIGHT, and serves the requests in flight', async () => {
    const events = async (outcome: string) => scrapeValue(ingest.metricsUrl, 'wagate_webhook_events_total', { source: 'whatsapp', outcome });
    const answered503 = () => scrapeValue(ingest.metricsUrl, 'wagate_webhook_requests_total', { source: 'whatsapp', code: '503' });
    const before = { overloaded: await events('overloaded'), queued: await events('queued'), answered503: await answered503() };
    // Hold the ledger table so the first two requests wait on it.
    const lock = await lockLedger();
    let held: Promise<{ status: number }>[] = [];
    try {
      held = [postMetaText(ingest.baseUrl, {}), postMetaText(ingest.baseUrl, {})];
      await waitFor('two requests in flight', async () => (await scrapeValue(ingest.metricsUrl, 'wagate_http_in_flight_requests')) === 2);
      const refused = await postMetaText(ingest.baseUrl, {});
      // "At once" is the refusal path itself: no body read, no ledger work, a short Retry-After.
      expect([refused.status, refused.body, refused.headers.get('retry-after')]).toEqual([503, 'overloaded', '1']);
    } finally {
      await lock.release();
    }
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
    expect((await events('overloaded')) - before.overloaded).toBe(1);
    expect((await events('queued')) - before.queued).toBe(2);
    // The per-status count is taken when each response has closed, just after the client has it.
    await waitFor('one 503 counted', async () => (await answered503()) - before.answered503 === 1);
  });
});

describe('slow statements', () => {
  /** Short, so that a statement blocked on a lock ends well within the test. */
  const STATEMENT_TIMEOUT_MS = 300;
  let ingest: TestIngest;

  beforeAll(async () => {
    ingest = await startTestIngest(db.url, { DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS) });
  });

  afterAll(async () => {
    await ingest.stop();
    await probe.deleteTopology(ingest.topology);
  });

  it('answers 503, not a hang, when a statement times out, and 200 once the ledger is free', async () => {
    const events = async (outcome: string) => scrapeValue(ingest.metricsUrl, 'wagate_webhook_events_total', { source: 'whatsapp', outcome });
    const before = await events('unavailable');
    const lock = await lockLedger();
    try {
      // statement_timeout ends the blocked insert, and the request with a 503 rather than a hang.
      expect((await postMetaText(ingest.baseUrl, {})).status).toBe(503);
    } finally {
      await lock.release();
    }
    expect((await events('unavailable')) - before).toBe(1);
    // Free again at once: one of the next few requests is answered 200 (a single one, under this
    // 300 ms statement timeout, could still be ended by a busy machine's slowness alone).
    const next = [];
    for (let attempt = 0; attempt < 3 && next.at(-1) !== 200; attempt += 1) next.push((await postMetaText(ingest.baseUrl, {})).status);
    expect(next.at(-1)).toBe(200);
  });
});

describe('a commit that outlasts HTTP_REQUEST_TIMEOUT_MS', () => {
  let ingest: TestIngest;

  beforeAll(async () => {
    // The request timeout bounds a slow client; a statement blocked on a lock ends after 1 s.
    ingest = await startTestIngest(db.url, { HTTP_HEADERS_TIMEOUT_MS: '400', HTTP_REQUEST_TIMEOUT_MS: '400', DB_STATEMENT_TIMEOUT_MS: '1000' });
  });

  afterAll(async () => {
    await ingest.stop();
    await probe.deleteTopology(ingest.topology);
  });

  it('answers 503 with Retry-After, rather than resetting the connection of a request it was still answering', async () => {
    const lock = await lockLedger();
    try {
      const answer = await postMetaText(ingest.baseUrl, {});
      expect([answer.status, answer.headers.get('retry-after')]).toEqual([503, expect.any(String)]);
    } finally {
      await lock.release();
    }
    expect((await postMetaText(ingest.baseUrl, {})).status).toBe(200);
  });
});
