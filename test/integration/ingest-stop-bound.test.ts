import { createTestDatabase, type TestDatabase } from '../support/database';
import { startTestIngest } from '../support/ingest';
import { openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait';
import { postMetaText, uniqueWamid } from '../support/webhooks';

/**
 * SIGTERM must end inside the pod's grace period (SHUTDOWN_TIMEOUT_MS + the preStop pause +
 * 10 s) even when everything it waits for hangs: a commit blocked on a lock, and a broker that
 * has stopped answering. Otherwise the kubelet kills the process in the middle of closing.
 */
const SHUTDOWN_TIMEOUT_MS = 500;
/** The chart's grace beyond SHUTDOWN_TIMEOUT_MS and the preStop pause. */
const GRACE_AFTER_REQUESTS_MS = 10_000;

let db: TestDatabase;
let proxy: TcpProxy;
/** TEST_AMQP_URL through the proxy. */
let proxiedAmqpUrl: string;
let probe: QueueProbe;

beforeAll(async () => {
  db = await createTestDatabase();
  ({ proxy, url: proxiedAmqpUrl } = await startProxyFor(TEST_AMQP_URL, 5672));
  probe = await openQueueProbe();
});

afterAll(async () => {
  proxy.setMode('forward');
  await proxy.close();
  await probe.close();
  await db.drop();
});

it('ends within the grace period while a commit hangs and the broker does not answer', async () => {
  const ingest = await startTestIngest(db.url, {
    // A heartbeat longer than the test, so that only the close's own bounds end the hung connection.
    AMQP_URL: withHeartbeat(proxiedAmqpUrl, 120),
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    // Longer than the test, so that Postgres does not cancel the blocked commit first.
    DB_STATEMENT_TIMEOUT_MS: '60000',
  });
  const held = uniqueWamid();
  const holder = await db.sql.reserve();
  try {
    await holder`BEGIN`;
    // The request's batch waits for this uncommitted insert of the same message id.
    await holder`INSERT INTO webhook_messages (webhook_source, message_id, status) VALUES ('whatsapp', ${held}, 'processed')`;
    const answered = postMetaText(ingest.baseUrl, { id: held, text: '2 pizzas' }).catch(() => null);
    await waitFor('the batch to wait for the lock', async () =>
      (await db.sql`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).length > 0,
    );
    proxy.setMode('blackhole');
    const started = performance.now();
    await ingest.stop();
    const stoppedAfterRequestsMs = performance.now() - started - SHUTDOWN_TIMEOUT_MS;
    // Unbounded: 6 s for the commit, then 5 s for the broker's channel (and 5 s more for its connection).
    expect(stoppedAfterRequestsMs).toBeLessThan(GRACE_AFTER_REQUESTS_MS);
    await holder`ROLLBACK`;
    await answered;
  } finally {
    holder.release();
    proxy.setMode('forward');
    await probe.deleteTopology(ingest.topology);
  }
}, 60_000);

/** The URL with amqplib's heartbeat (in seconds) set, whatever the URL already says. */
function withHeartbeat(url: string, seconds: number): string {
  const parsed = new URL(url);
  parsed.searchParams.set('heartbeat', String(seconds));
  return parsed.toString();
}
