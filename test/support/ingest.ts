import { randomBytes } from 'node:crypto';
import { startIngest, type RunningIngest } from '../../src/commands/ingest';
import { loadConfig, type Config } from '../../src/config';
import { createLogger } from '../../src/telemetry/logger';
import { openQueueProbe, TEST_AMQP_URL, type QueueProbe } from './amqp';
import { createTestDatabase, type TestDatabase } from './database';

export const META_SECRET = 'test-meta-app-secret';
export const TWILIO_TOKEN = 'test-twilio-auth-token';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const VERIFY_TOKEN = 'test-verify-token';

export interface TestIngest extends RunningIngest {
  baseUrl: string;
  metricsUrl: string;
  config: Config;
}

/**
 * Each test process's pool: enough for the group commit to batch concurrently, and small
 * enough that two test files in parallel, each with a few ingests and workers that warm their
 * pools at start, stay well inside Postgres's default max_connections of 100.
 */
export const TEST_DB_POOL_MAX = 6;

export function randomQueuePrefix(): string {
  return `wagate-test-${randomBytes(5).toString('hex')}`;
}

/** Env for a test gateway: ephemeral ports, its own queue prefix, known secrets. */
export function testEnv(databaseUrl: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    DATABASE_URL: databaseUrl,
    AMQP_URL: TEST_AMQP_URL,
    QUEUE_PREFIX: randomQueuePrefix(),
    PORT: '0',
    METRICS_PORT: '0',
    HOST: '127.0.0.1',
    WHATSAPP_APP_SECRET: META_SECRET,
    WHATSAPP_VERIFY_TOKEN: VERIFY_TOKEN,
    TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
    ADMIN_TOKEN,
    OUTBOX_POLL_MS: '100',
    DB_POOL_MAX: String(TEST_DB_POOL_MAX),
    // A short rehearsal still runs the whole path; 2,000 per ingest would slow the suite down.
    WARM_UP_REHEARSAL_REQUESTS: '20',
    // A few shards: 32 quorum queues per test file would slow the suite down.
    WORK_SHARDS: '4',
    // Hand-overs within seconds: a worker that dies is given up after 2 s.
    WORKER_HEARTBEAT_MS: '200',
    WORKER_LIVENESS_TIMEOUT_MS: '2000',
    ...overrides,
  };
}

/** A real ingest in this process, as `wagate ingest` runs it. */
export async function startTestIngest(
  databaseUrl: string,
  overrides: Record<string, string> = {},
  options: { awaitWarmUp?: boolean } = {},
): Promise<TestIngest> {
  const env = testEnv(databaseUrl, overrides);
  const config = loadConfig(env);
  const ingest = await startIngest(config, createLogger(config.LOG_LEVEL, 'wagate-test'));
  // As a Service would, the tests send once the warm-up is over (test/integration/ingest-warm-up.test.ts looks inside it).
  if (options.awaitWarmUp !== false) await ingest.warmedUp;
  return {
    ...ingest,
    config,
    baseUrl: `http://127.0.0.1:${ingest.port}`,
    metricsUrl: `http://127.0.0.1:${ingest.metricsPort}/metrics`,
  };
}

export interface IngestSuite {
  db: TestDatabase;
  ingest: TestIngest;
  probe: QueueProbe;
}

/** A test file's own database, ingest and queue probe, set up before and torn down after its tests. */
export function useIngestSuite(overrides: Record<string, string> = {}): IngestSuite {
  const suite = {} as IngestSuite;
  beforeAll(async () => {
    suite.db = await createTestDatabase();
    suite.ingest = await startTestIngest(suite.db.url, overrides);
    suite.probe = await openQueueProbe();
    await suite.ingest.broker.waitUntilConnected(10000);
  });
  afterAll(async () => {
    await suite.ingest.stop();
    await suite.probe.deleteTopology(suite.ingest.topology);
    await suite.probe.close();
    await suite.db.drop();
  });
  return suite;
}
