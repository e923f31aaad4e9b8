import { deleteTopology } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { randomQueuePrefix, testEnv } from '../support/ingest';
import { spawnWagate, type ChildIngest } from '../support/process';
import { postTwilio, twilioText } from '../support/webhooks';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';

let db: TestDatabase;
let child: ChildIngest;
const prefix = randomQueuePrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  child = await spawnWagate('ingest', testEnv(db.url, { QUEUE_PREFIX: prefix, TWILIO_SKIP_VALIDATION: 'true' }));
});

afterAll(async () => {
  await child.stop();
  await deleteTopology(topologyFromConfig(loadConfig({ QUEUE_PREFIX: prefix })));
  await db.drop();
});

describe('TWILIO_SKIP_VALIDATION in test', () => {
  it('accepts an unsigned Twilio post, after a warning at start', async () => {
    expect(child.logs.some((entry) => entry.level === 40 && /TWILIO_SKIP_VALIDATION=true/.test(String(entry.msg)))).toBe(true);
    const form = twilioText('1 coke');
    const reply = await postTwilio(child.baseUrl, form, { publicBaseUrl: 'https://unused.example.com', signature: null });
    expect(reply.status).toBe(200);
    const [row] = await db.sql`SELECT status FROM webhook_messages WHERE message_id = ${form.find(([name]) => name === 'MessageSid')![1]}`;
    expect(row?.status).toBe('queued');
  });
});
