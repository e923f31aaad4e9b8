import { deleteTopology } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { randomQueuePrefix, testEnv } from '../support/ingest';
import { spawnWagate, type ChildIngest } from '../support/process';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';

/**
 * Meta retries a webhook for 7 days. A replay window shorter than that refuses, as replays,
 * the retries of messages sent before an outage longer than it: answered 200, they never come
 * again. The setting is allowed (a shop may prefer it), so the ingest says what it costs.
 */
let db: TestDatabase;
let child: ChildIngest;
const prefix = randomQueuePrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  child = await spawnWagate('ingest', testEnv(db.url, { QUEUE_PREFIX: prefix, REPLAY_WINDOW_SECONDS: '3600' }));
});

afterAll(async () => {
  await child.stop();
  await deleteTopology(topologyFromConfig(loadConfig({ QUEUE_PREFIX: prefix })));
  await db.drop();
});

it('warns at start that a replay window shorter than Meta\'s 7 days of retries drops the retries of an outage longer than it', () => {
  const warning = child.logs.find((entry) => String(entry.msg).startsWith('REPLAY_WINDOW_SECONDS is shorter than the 7 days Meta retries'));
  expect(warning).toMatchObject({ level: 40, replayWindowSeconds: 3600, metaRetrySeconds: 604800 });
});
