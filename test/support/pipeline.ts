import { startWorker, type RunningWorker } from '../../src/commands/worker';
import { loadConfig } from '../../src/config';
import { startFakeProvider, type FakeProvider } from '../../src/dev/fake-provider';
import { importCatalog } from '../../src/orders/catalog-import';
import { createLogger } from '../../src/telemetry/logger';
import { deleteTopology } from './amqp';
import { waitFor } from './wait';
import { createTestDatabase, type TestDatabase } from './database';
import { startTestIngest, testEnv, TWILIO_TOKEN, type TestIngest } from './ingest';

export const ACCESS_TOKEN = 'test-graph-token';
export const TWILIO_SID = 'AC0123456789abcdef0123456789abcdef';
export const PUBLIC_BASE_URL = 'https://shop.example.com';
/** The business number of the Meta samples; the fake Graph API knows only this one. */
export const META_PHONE_NUMBER_ID = '106540352242922';

export const CATALOG_CSV = `sku,name,price,currency,aliases
PIZ-MARG,Pizza Margherita,8.50,EUR,margherita|margarita
PIZ-PEPP,Pizza Pepperoni,9.50,EUR,pepperoni
COKE,Coca-Cola,2.50,EUR,coke|cola|coca cola
CAFE,Café con leche,2.00,EUR,cafe|coffee
FISH-CHIPS,Fish and chips,11.00,EUR,fish & chips
`;

export interface Pipeline {
  db: TestDatabase;
  ingest: TestIngest;
  fake: FakeProvider;
  env: Record<string, string>;
  workers: RunningWorker[];
  startWorker(overrides?: Record<string, string>): Promise<RunningWorker>;
  stop(): Promise<void>;
}

/**
 * Waits until the relay has deleted a message's confirmed outbox row (it gathers deletes):
 * until then the message is still on its way, so it cannot count as stuck.
 */
export async function waitUntilOutOfOutbox(db: TestDatabase, messageId: string): Promise<void> {
  await waitFor(`${messageId}'s outbox row to be deleted`, async () =>
    (await db.sql`SELECT 1 FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id WHERE m.message_id = ${messageId}`).length === 0);
}

/** The provider calls the fake received for one recipient, oldest first. */
export function callsTo(pipeline: Pipeline, to: string) {
  return pipeline.fake.calls().filter((call) => (call.body as { to?: string }).to === to);
}

/**
 * Until the in-process workers hold every shard between them, each exactly once: the group
 * has settled, so a test's messages do not arrive in the middle of a hand-over.
 */
export async function waitUntilShardsCovered(workers: RunningWorker[]): Promise<void> {
  const shardCount = workers[0]?.topology.shards.length ?? 0;
  const everyShard = Array.from({ length: shardCount }, (_, shard) => shard).join();
  await waitFor('the workers to hold every shard once', () => {
    const held = workers.flatMap((worker) => worker.coordinator.owned()).sort((a, b) => a - b);
    const fair = workers.map((worker) => worker.coordinator.owned().length);
    return held.join() === everyShard && Math.max(...fair) - Math.min(...fair) <= 1;
  }, 30_000);
}

/** The fake Graph API and Twilio REST API, knowing the credentials and number the tests use. */
export function startKnownFakeProvider(): Promise<FakeProvider> {
  return startFakeProvider({
    metaAccessToken: ACCESS_TOKEN,
    twilioAccountSid: TWILIO_SID,
    twilioAuthToken: TWILIO_TOKEN,
    metaPhoneNumberIds: [META_PHONE_NUMBER_ID],
  });
}

/** Ingest, workers and the fake providers around one fresh database and queue prefix. */
export async function startPipeline(overrides: Record<string, string> = {}): Promise<Pipeline> {
  const db = await createTestDatabase();
  await importCatalog(db.sql, CATALOG_CSV);
  const fake = await startKnownFakeProvider();
  const env = testEnv(db.url, {
    PUBLIC_BASE_URL,
    WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
    WHATSAPP_GRAPH_API_URL: fake.url,
    TWILIO_API_URL: fake.url,
    TWILIO_ACCOUNT_SID: TWILIO_SID,
    ...overrides,
  });
  const ingest = await startTestIngest(db.url, env);
  await ingest.broker.waitUntilConnected(10000);
  const workers: RunningWorker[] = [];
  return {
    db,
    ingest,
    fake,
    env,
    workers,
    async startWorker(workerOverrides = {}) {
      const config = loadConfig({ ...env, ...workerOverrides });
      const worker = await startWorker(config, createLogger(config.LOG_LEVEL, 'wagate-test-worker'));
      await worker.broker.waitUntilConnected(10000);
      await worker.publishBroker.waitUntilConnected(10000);
      workers.push(worker);
      // Workers left running with another shard count hold nothing; they are not part of the split.
      await waitUntilShardsCovered(workers.filter((each) => each.topology.shards.length === worker.topology.shards.length));
      return worker;
    },
    async stop() {
      await Promise.all(workers.map((worker) => worker.stop()));
      await ingest.stop();
      fake.reset();
      await fake.close();
      await deleteTopology(ingest.topology);
      await db.drop();
    },
  };
}
