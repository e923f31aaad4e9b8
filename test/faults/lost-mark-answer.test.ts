import { startPipeline, callsTo as callsToRecipient, type Pipeline } from '../support/pipeline';
import { withPort } from '../support/database';
import { startJudgingProxy, type JudgingProxy } from '../support/judging-proxy';
import { startProxyFor, type TcpProxy } from '../support/tcp-proxy';
import type { RunningWorker } from '../../src/commands/worker';
import { eraseEverywhere } from '../support/dead-letters';
import { NOT_SENT_ERASED } from '../../src/orders/erasure';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * The connection drops after the reply's 'sending' mark has committed and before its answer
 * reaches the worker, as in a failover. The attempt cannot tell that the mark landed, but it
 * knows it called nothing: its retry carries the mark's token, and the next attempt takes the
 * reply over and sends it, once. Before, the next attempt found the reply 'sending', took it
 * for an attempt that died mid-call, and marked it unknown: a reply never sent left waiting for
 * an operator (up to 128 of them, one mark statement's worth).
 */
const SETTLE_MS = 60_000;
/** Only the mark's statement holds this. */
const MARK_STATEMENT = 'sending_attempt = m.attempt';

let pipeline: Pipeline;
const proxies: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  // Tiers of 100 and 200 ms: a message waits out a database outage in the longest.
  pipeline = await startPipeline({ RETRY_DELAYS_MS: '100,200' });
  // Every mark as 'sending' is logged with its token by a trigger, in the mark's own transaction:
  // a logged mark committed.
  await pipeline.db.sql.unsafe(`
    CREATE TABLE sending_marks (seq bigserial, reply_id bigint, token uuid);
    CREATE FUNCTION log_sending_mark() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO sending_marks (reply_id, token) VALUES (NEW.id, NEW.sending_attempt);
      RETURN NEW;
    END $$;
    CREATE TRIGGER log_sending_mark AFTER UPDATE ON outbound_messages FOR EACH ROW
      WHEN (NEW.status = 'sending') EXECUTE FUNCTION log_sending_mark();`);
}, 60_000);

afterEach(async () => {
  for (const worker of pipeline.workers.splice(0)) await worker.stop();
});

afterAll(async () => {
  await pipeline?.stop();
  for (const proxy of proxies) await proxy.close();
});

/**
 * A proxy to Postgres that, once, drops the answer that completes the mark's UPDATE and resets
 * its connection (calling `onLoss` first). Postgres has committed the mark by then: it sends the
 * answer after the Sync's commit, and the worker only hears that the connection was lost.
 */
async function losingOneMarkAnswer(onLoss: () => void = () => undefined): Promise<JudgingProxy & { lost(): boolean }> {
  let armed = true;
  const proxy = await startJudgingProxy(new URL(pipeline.db.url), 5432, {
    fromClient(chunk, notes) {
      if (chunk.includes(MARK_STATEMENT)) notes.add('marking');
      return 'pass';
    },
    fromServer(chunk, notes) {
      if (!(armed && notes.has('marking') && chunk.includes('UPDATE '))) return 'pass';
      armed = false;
      onLoss();
      return 'reset';
    },
  });
  proxies.push(proxy);
  return { ...proxy, lost: () => !armed };
}

/** Sends one order, waits until it is processed, and checks that its reply was marked twice (the lost mark, the take-over) and sent once. */
async function expectSentOnceAfterALostMark(from: string): Promise<void> {
  const id = uniqueWamid();
  expect((await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '2 coke' })).status).toBe(200);
  await waitFor('the message processed', async () => {
    const [row] = await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`;
    return row?.status === 'processed';
  }, SETTLE_MS);
  const [reply] = await pipeline.db.sql<{ id: string; status: string; attempts: number; sending_attempt: string | null }[]>`
    SELECT id::text, status, attempts, sending_attempt FROM outbound_messages WHERE inbound_message_id = ${id}`;
  const marks = await pipeline.db.sql<{ token: string }[]>`SELECT token FROM sending_marks WHERE reply_id = ${reply!.id} ORDER BY seq`;
  // The first mark committed (its answer was what the proxy lost); the second took it over.
  expect(marks).toHaveLength(2);
  expect(marks[0]!.token).not.toBe(marks[1]!.token);
  // Settled, the reply holds no token any more: no carried token can match it again.
  expect(reply).toMatchObject({ status: 'sent', attempts: 2, sending_attempt: null });
  expect(callsToRecipient(pipeline, from)).toHaveLength(1);
}

it('sends, once, a reply whose sending mark committed with its answer lost', async () => {
  const losing = await losingOneMarkAnswer();
  // Enough connections that postgres.js never queues another statement behind the mark's on its connection.
  await pipeline.startWorker({ DATABASE_URL: withPort(pipeline.db.url, losing.port), DB_CONNECT_TIMEOUT_SECONDS: '1', DB_POOL_MAX: '20' });
  await expectSentOnceAfterALostMark('15550900001');
  expect(losing.resets()).toBe(1);
}, SETTLE_MS + 30_000);

/**
 * A worker that reaches RabbitMQ through a proxy of its own, refused when the mark's answer is
 * lost, as in a network split: the retry cannot be published, and the message comes back from
 * its queue without the header. The worker still knows the token. `lost` resolves once the
 * worker has lost the broker; `heal` lets it reconnect.
 */
async function workerLosingBrokerWithMarkAnswer(): Promise<{ lost: Promise<void>; heal(): void }> {
  const broker: { proxy: TcpProxy; url: string } = await startProxyFor(pipeline.env.AMQP_URL!, 5672);
  proxies.push(broker.proxy);
  const losing = await losingOneMarkAnswer(() => broker.proxy.setMode('refuse'));
  const worker: RunningWorker = await pipeline.startWorker({
    DATABASE_URL: withPort(pipeline.db.url, losing.port),
    AMQP_URL: broker.url,
    DB_CONNECT_TIMEOUT_SECONDS: '1',
    // Enough connections that postgres.js never queues another statement behind the mark's on its connection.
    DB_POOL_MAX: '20',
  });
  const lost = (async () => {
    await waitFor('the mark\'s answer lost', () => losing.lost(), SETTLE_MS);
    await waitFor('the worker to lose the broker', () => !worker.broker.isConnected(), SETTLE_MS);
  })();
  return { lost, heal: () => broker.proxy.setMode('forward') };
}

it('sends it once too when the broker went away in the same moment, so that no retry could carry the token', async () => {
  const split = await workerLosingBrokerWithMarkAnswer();
  const sending = expectSentOnceAfterALostMark('15550900002');
  await split.lost;
  split.heal();
  await sending;
}, SETTLE_MS + 30_000);

it('fails, as never sent, the reply of a customer erased before the message came back', async () => {
  const split = await workerLosingBrokerWithMarkAnswer();
  const id = uniqueWamid();
  const from = '15550900003';
  expect((await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '2 coke' })).status).toBe(200);
  await split.lost;
  expect(await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, `+${from}`)).toMatchObject({ messages: 1 });
  split.heal();
  // The copy comes back, is dropped as erased, and the reply it had marked is settled.
  await waitFor('the reply failed as never sent', async () => {
    const [reply] = await pipeline.db.sql<{ status: string; last_error: string | null }[]>`
      SELECT status, last_error FROM outbound_messages WHERE inbound_message_id = ${id}`;
    return reply?.status === 'failed' && reply.last_error === NOT_SENT_ERASED;
  }, SETTLE_MS);
  expect(callsToRecipient(pipeline, from)).toHaveLength(0);
}, SETTLE_MS + 30_000);
