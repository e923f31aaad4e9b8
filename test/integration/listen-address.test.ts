import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { deleteTopology } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { spawnWagate, type ChildIngest } from '../support/process';

/**
 * Without HOST, the ingest listens on every address of both families, as a pod on an IPv6-only
 * or dual-stack cluster needs: its probes and its Service may come over IPv6. HOST used to
 * default to 0.0.0.0, which takes IPv4 only.
 */
let db: TestDatabase;
let ingest: ChildIngest;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  // An empty HOST, as a chart or manifest leaves it, is no HOST.
  env = testEnv(db.url, { HOST: '' });
  ingest = await spawnWagate('ingest', env);
});

afterAll(async () => {
  await ingest.stop();
  await deleteTopology(topologyFromConfig(loadConfig(env)));
  await db.drop();
});

it('has no default listening address', () => {
  expect(loadConfig({}).HOST).toBeUndefined();
  expect(loadConfig({ HOST: '' }).HOST).toBeUndefined();
  expect(loadConfig({ HOST: '127.0.0.1' }).HOST).toBe('127.0.0.1');
});

it.each(['127.0.0.1', '[::1]'])('answers the webhook port and the metrics port over %s', async (address) => {
  const port = new URL(ingest.baseUrl).port;
  const metricsPort = new URL(ingest.metricsUrl).port;
  expect((await fetch(`http://${address}:${port}/healthz`)).status).toBe(200);
  expect((await fetch(`http://${address}:${metricsPort}/metrics`)).status).toBe(200);
});
