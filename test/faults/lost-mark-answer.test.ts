import { startPipeline, callsTo as callsToRecipient, type Pipeline } from '../support/pipeline';
import { withPort } from '../support/database';
import { startJudgingProxy, type JudgingProxy } from '../support/judging-proxy';
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

let pipeline: Pipeline;
let losing: JudgingProxy;

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
  // Once: on the connection that sends the mark's statement, the answer that completes its
  // UPDATE is dropped and the connection reset. Postgres has committed the mark by then (it
  // sends the answer after the Sync's commit); the worker only hears that the connection was lost.
  let armed = true;
  losing = await startJudgingProxy(new URL(pipeline.db.url), 5432, {
    fromClient(chunk, notes) {
      if (chunk.includes('sending_attempt = m.attempt')) notes.add('marking');
      return 'pass';
    },
    fromServer(chunk, notes) {
      if (!(armed && notes.has('marking') && chunk.includes('UPDATE '))) return 'pass';
      armed = false;
      return 'reset';
    },
  });
  await pipeline.startWorker({ DATABASE_URL: withPort(pipeline.db.url, losing.port), DB_CONNECT_TIMEOUT_SECONDS: '1' });
}, 60_000);

afterAll(async () => {
  await pipeline?.stop();
  await losing?.close();
});

it('sends, once, a reply whose sending mark committed with its answer lost', async () => {
  const id = uniqueWamid();
  const from = '15550900001';
  expect((await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '2 coke' })).status).toBe(200);
  await waitFor('the message processed', async () => {
    const [row] = await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`;
    return row?.status === 'processed';
  }, SETTLE_MS);

  expect(losing.resets()).toBe(1);
  const [reply] = await pipeline.db.sql<{ id: string; status: string; attempts: number; sending_attempt: string }[]>`
    SELECT id::text, status, attempts, sending_attempt FROM outbound_messages WHERE inbound_message_id = ${id}`;
  const marks = await pipeline.db.sql<{ token: string }[]>`SELECT token FROM sending_marks WHERE reply_id = ${reply!.id} ORDER BY seq`;
  // The first mark committed (its answer was what the proxy lost); the second took it over.
  expect(marks).toHaveLength(2);
  expect(marks[0]!.token).not.toBe(marks[1]!.token);
  // Settled, the reply holds no token any more: no carried token can match it again.
  expect(reply).toMatchObject({ status: 'sent', attempts: 2, sending_attempt: null });
  expect(callsToRecipient(pipeline, from)).toHaveLength(1);
}, SETTLE_MS + 30_000);
