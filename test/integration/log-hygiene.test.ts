import { metaSignature, metaTextEnvelope } from '../../src/webhooks/samples';
import { META_SECRET } from '../support/ingest';
import { ACCESS_TOKEN, startPipeline, type Pipeline } from '../support/pipeline';
import { spawnWagate, type ChildIngest } from '../support/process';
import { postMeta, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

let pipeline: Pipeline;
let children: ChildIngest[] = [];

beforeAll(async () => {
  pipeline = await startPipeline({ RETRY_DELAYS_MS: '100' });
  children = [await spawnWagate('ingest', pipeline.env), await spawnWagate('worker', pipeline.env)];
});

afterAll(async () => {
  await Promise.all(children.map((child) => child.stop()));
  await pipeline.stop();
});

describe('logs', () => {
  it('never carry secrets, signatures or message bodies, even when things fail', async () => {
    const body = 'two pizzas for the secret-garden party 🍕';
    const id = uniqueWamid();
    const envelope = JSON.stringify(metaTextEnvelope({ id, from: '15550600001', text: body }));
    const signature = metaSignature(META_SECRET, envelope);
    // A failing provider makes the worker log errors and dead-letter the message.
    pipeline.fake.behave({ kind: 'status', status: 503 }, 2);
    expect((await postMeta(children[0]!.baseUrl, envelope)).status).toBe(200);
    expect((await postMeta(children[0]!.baseUrl, envelope, { signature: 'sha256=' + '0'.repeat(64) })).status).toBe(401);
    expect((await postMeta(children[0]!.baseUrl, '{"broken": ', {})).status).toBe(200);
    await waitFor('the message to be dead-lettered', async () =>
      (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status === 'dead',
    );
    await waitFor('the worker to log the dead letter', () => children[1]!.logs.some((entry) => entry.msg === 'message dead-lettered'));
    const text = children.flatMap((child) => child.logs).map((entry) => JSON.stringify(entry)).join('\n');
    expect(text.length).toBeGreaterThan(0);
    for (const forbidden of [body, 'secret-garden', META_SECRET, signature.slice(7), ACCESS_TOKEN, 'guest:guest']) {
      expect(text).not.toContain(forbidden);
    }
  });
});
