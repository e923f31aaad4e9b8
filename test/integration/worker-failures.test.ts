import amqp from 'amqplib';
import { eraseEverywhere, listDead, replayDead } from '../support/dead-letters';
import { abandonedSendAfterMs, countUnknownReplies, listUnknownReplies, resendReply, SEND_ABANDONED, SETTLED_NOT_RESENT, settleReply } from '../../src/orders/reply-operations';
import { runWagateKilledAt } from '../support/process';
import { NOT_SENT_ERASED } from '../../src/orders/erasure';
import { NOT_SENT_ORDER_CANCELLED } from '../../src/orders/mark-sending';
import { createReplyClient } from '../../src/replies/reply-clients';
import { requeueStuckMessages, stuckAfterMs } from '../../src/ledger/stuck';
import { routingKeyFor } from '../../src/queue/topology';
import { TEST_AMQP_URL } from '../support/amqp';
import { STATS_PATH } from '../../src/http/app';
import { ADMIN_TOKEN } from '../support/ingest';
import { ACCESS_TOKEN, startPipeline, waitUntilOutOfOutbox, type Pipeline, callsTo as callsToRecipient } from '../support/pipeline';
import { postMeta, postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';
import { seriesValue } from '../support/metrics';

let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ RETRY_DELAYS_MS: '100,600' });
  await pipeline.startWorker();
});

afterAll(async () => {
  await pipeline.stop();
});

const callsTo = (to: string) => callsToRecipient(pipeline, to);
const recordOf = async (id: string) =>
  (await pipeline.db.sql<{ status: string; last_error: string | null }[]>`
    SELECT status, last_error FROM webhook_messages WHERE message_id = ${id}`)[0];
const replyOf = async (id: string) =>
  (await pipeline.db.sql<{ status: string; delivery_status: string | null; provider_message_id: string | null }[]>`
    SELECT status, delivery_status, provider_message_id FROM outbound_messages WHERE inbound_message_id = ${id}`)[0];

/** A message whose reply the provider never answered (a hang past REPLY_TIMEOUT_MS): unknown, as an operator finds it. */
async function unknownReplyFrom(from: string) {
  const id = uniqueWamid();
  pipeline.fake.behave({ kind: 'hang' }, 1);
  await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
  await waitFor('the reply to be unknown', async () => (await replyOf(id))?.status === 'unknown');
  const [reply] = (await listUnknownReplies(pipeline.db.sql)).filter((r) => r.inbound_message_id === id);
  return { id, reply: reply! };
}

const skippedCount = async () =>
  (await Promise.all(pipeline.workers.map(async (worker) => (await worker.metrics.workerMessages.get()).values)))
    .flat()
    .filter((v) => v.labels.outcome === 'skipped')
    .reduce((sum, v) => sum + v.value, 0);

describe('worker failures', () => {
  it('climbs every retry tier on 503s, lands in the dead-letter queue, and a replay then sends once', async () => {
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 503 }, 3);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200001', text: '1 coke' });
    await waitFor('the message to be dead', async () => (await recordOf(id))?.status === 'dead');
    // One try plus one per tier (two tiers), each calling the provider exactly once.
    const calls = callsTo('15550200001');
    expect(calls).toHaveLength(3);
    // The second retry waited in the second tier (600 ms), not the first one again.
    expect(calls[1]!.receivedAt - calls[0]!.receivedAt).toBeGreaterThanOrEqual(90);
    expect(calls[2]!.receivedAt - calls[1]!.receivedAt).toBeGreaterThanOrEqual(550);
    expect((await recordOf(id))!.last_error).toMatch(/^retries exhausted: Graph API 503 code 131016/);
    // Never sent, and nothing tries again until a replay: failed, so cleanup clears its text in time.
    expect(await replyOf(id)).toMatchObject({ status: 'failed' });
    const letters = await waitFor('the dead letter', async () => {
      const all = await listDead(pipeline.ingest.topology);
      return all.find((letter) => letter.id === `whatsapp:${id}`);
    });
    // Three tries: the first and one per tier.
    expect(letters).toMatchObject({ attempts: 3, lastError: expect.stringMatching(/retries exhausted/) });
    // Listing does not consume.
    expect((await listDead(pipeline.ingest.topology)).map((l) => l.id)).toContain(`whatsapp:${id}`);

    const { replayed } = await replayDead(pipeline.db.sql, pipeline.ingest.topology, [`whatsapp:${id}`]);
    expect(replayed).toEqual([`whatsapp:${id}`]);
    await waitFor('the replayed message to be processed', async () => (await recordOf(id))?.status === 'processed');
    expect(callsTo('15550200001')).toHaveLength(4);
    expect(await replyOf(id)).toMatchObject({ status: 'sent' });
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).toHaveLength(1);
    expect((await listDead(pipeline.ingest.topology)).map((l) => l.id)).not.toContain(`whatsapp:${id}`);
  });

  it('marks the reply unknown on a 503 without the provider\'s error, a proxy\'s, which may come after the request went out, and sends it once', async () => {
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 503, bodyless: true }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200031', text: '1 coke' });
    await waitFor('the message to be processed', async () => (await recordOf(id))?.status === 'processed');
    expect(await replyOf(id)).toMatchObject({ status: 'unknown' });
    expect(callsTo('15550200031')).toHaveLength(1);
    const reply = (await listUnknownReplies(pipeline.db.sql)).find((unknown) => unknown.inbound_message_id === id);
    expect(reply?.last_error).toMatch(/^Graph API 503: no error body/);
    // As an operator would, once the provider's console says: the other tests count unknown replies.
    await settleReply(pipeline.db.sql, reply!.id, 'sent');
  });

  it('leaves a dead letter whose record was cleaned up in the queue rather than replaying it for nothing', async () => {
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200007', text: '1 coke' });
    await waitFor('the dead letter', async () =>
      (await listDead(pipeline.ingest.topology)).some((l) => l.id === `whatsapp:${id}`),
    );
    await pipeline.db.sql`DELETE FROM outbound_messages WHERE inbound_message_id = ${id}`;
    await pipeline.db.sql`DELETE FROM orders WHERE message_id = ${id}`;
    await pipeline.db.sql`DELETE FROM webhook_messages WHERE message_id = ${id}`;
    const result = await replayDead(pipeline.db.sql, pipeline.ingest.topology, [`whatsapp:${id}`]);
    expect(result).toEqual({ replayed: [], skipped: [`whatsapp:${id}`], settling: [], unroutable: [] });
    expect((await listDead(pipeline.ingest.topology)).map((l) => l.id)).toContain(`whatsapp:${id}`);
    expect(callsTo('15550200007')).toHaveLength(1);
  });

  it('leaves a dead letter whose record is past the personal-data retention, which its copy would write back', async () => {
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200017', text: '1 coke' });
    await waitFor('the dead message', async () => (await pipeline.db.sql`SELECT 1 FROM webhook_messages WHERE message_id = ${id} AND status = 'dead'`).length === 1);
    await waitFor('the dead letter', async () => (await listDead(pipeline.ingest.topology)).some((l) => l.id === `whatsapp:${id}`));
    // What cleanup does to a finished record after PERSONAL_DATA_RETENTION_DAYS.
    await pipeline.db.sql`UPDATE webhook_messages SET payload = NULL, raw_body = NULL WHERE message_id = ${id}`;
    const result = await replayDead(pipeline.db.sql, pipeline.ingest.topology, [`whatsapp:${id}`]);
    expect(result).toEqual({ replayed: [], skipped: [`whatsapp:${id}`], settling: [], unroutable: [] });
    expect(await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`).toEqual([{ status: 'dead' }]);
    expect((await listDead(pipeline.ingest.topology)).map((l) => l.id)).toContain(`whatsapp:${id}`);
    expect(callsTo('15550200017')).toHaveLength(1);
  });

  it('dead-letters a permanent Meta error at once, classified by error code', async () => {
    const id = uniqueWamid();
    // 131047: outside the 24-hour customer-service window. No retry can fix it.
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200002', text: '1 coke' });
    await waitFor('the message to be dead', async () => (await recordOf(id))?.status === 'dead');
    expect(callsTo('15550200002')).toHaveLength(1);
    expect((await recordOf(id))!.last_error).toMatch(/code 131047/);
    expect(await replyOf(id)).toMatchObject({ status: 'failed' });
    const letter = await waitFor('the dead letter', async () =>
      (await listDead(pipeline.ingest.topology)).find((l) => l.id === `whatsapp:${id}`),
    );
    expect(letter).toMatchObject({ attempts: 1 });

    // Still outside the window after a replay: one more call, and dead again at once, without tiers.
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    const replay = await replayDead(pipeline.db.sql, pipeline.ingest.topology, [`whatsapp:${id}`]);
    expect(replay.replayed).toEqual([`whatsapp:${id}`]);
    await waitFor('the replayed message to be dead again', async () => callsTo('15550200002').length === 2 && (await recordOf(id))?.status === 'dead');
    expect(await replyOf(id)).toMatchObject({ status: 'failed' });
    await waitFor('the dead letter back', async () =>
      (await listDead(pipeline.ingest.topology)).some((l) => l.id === `whatsapp:${id}`),
    );
    expect(callsTo('15550200002')).toHaveLength(2);
  });

  it('records a message dead through a passing failure of that write, so it never counts as stuck', async () => {
    const id = uniqueWamid();
    // The first two writes of its 'dead' status fail as a passing lock cycle would.
    await pipeline.db.sql.unsafe(`
      CREATE SEQUENCE fail_dead_writes_seq;
      CREATE FUNCTION fail_dead_writes() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('fail_dead_writes_seq') <= 2 THEN RAISE EXCEPTION 'injected deadlock' USING ERRCODE = '40P01'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_dead_writes BEFORE UPDATE ON webhook_messages FOR EACH ROW
        WHEN (NEW.message_id = '${id}' AND NEW.status = 'dead') EXECUTE FUNCTION fail_dead_writes();`);
    try {
      pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
      await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200022', text: '1 coke' });
      await waitFor('the dead letter', async () => (await listDead(pipeline.ingest.topology)).find((l) => l.id === `whatsapp:${id}`));
      await waitFor('the message to be recorded dead', async () => (await recordOf(id))?.status === 'dead');
      const [tries] = await pipeline.db.sql<{ n: number }[]>`SELECT last_value::integer AS n FROM fail_dead_writes_seq`;
      expect(tries!.n).toBe(3);
      expect((await recordOf(id))!.last_error).toMatch(/code 131047/);
      expect(await replyOf(id)).toMatchObject({ status: 'failed' });
    } finally {
      await pipeline.db.sql.unsafe(`DROP TRIGGER fail_dead_writes ON webhook_messages; DROP FUNCTION fail_dead_writes(); DROP SEQUENCE fail_dead_writes_seq`);
    }
  });

  it('does not resend, on a replay of its message, a reply an operator settled as not to be resent', async () => {
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200023', text: '1 coke' });
    await waitFor('the message to be dead', async () => (await recordOf(id))?.status === 'dead');
    await waitFor('the dead letter', async () => (await listDead(pipeline.ingest.topology)).find((l) => l.id === `whatsapp:${id}`));
    // As the delivery limit leaves a reply whose send an earlier attempt cut short; the operator
    // learns that the customer was answered another way.
    await pipeline.db.sql`UPDATE outbound_messages SET status = 'unknown' WHERE inbound_message_id = ${id}`;
    const [reply] = (await listUnknownReplies(pipeline.db.sql)).filter((r) => r.inbound_message_id === id);
    await settleReply(pipeline.db.sql, reply!.id, 'failed');

    const replay = await replayDead(pipeline.db.sql, pipeline.ingest.topology, [`whatsapp:${id}`]);
    expect(replay.replayed).toEqual([`whatsapp:${id}`]);
    await waitFor('the replayed message to be dead again, for the settled reply', async () => {
      const record = await recordOf(id);
      return record?.status === 'dead' && record.last_error === SETTLED_NOT_RESENT;
    });
    expect(await replyOf(id)).toMatchObject({ status: 'failed' });
    expect(callsTo('15550200023')).toHaveLength(1);
  });

  it('does not send, on a replay of its message, a confirmation whose order the customer cancelled since', async () => {
    const id = uniqueWamid();
    const from = '15550200024';
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
    await waitFor('the message to be dead', async () => (await recordOf(id))?.status === 'dead');
    await waitFor('the dead letter', async () => (await listDead(pipeline.ingest.topology)).find((l) => l.id === `whatsapp:${id}`));
    // Never told their order was taken, the customer cancels it.
    const cancel = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: cancel, from, text: 'cancel' });
    await waitFor('the cancel processed', async () => (await recordOf(cancel))?.status === 'processed');
    expect(await pipeline.db.sql`SELECT status FROM orders WHERE message_id = ${id}`).toEqual([{ status: 'cancelled' }]);

    const replay = await replayDead(pipeline.db.sql, pipeline.ingest.topology, [`whatsapp:${id}`]);
    expect(replay.replayed).toEqual([`whatsapp:${id}`]);
    await waitFor('the replayed message finished', async () => (await recordOf(id))?.status === 'processed');
    expect(await pipeline.db.sql`SELECT status, last_error FROM outbound_messages WHERE inbound_message_id = ${id}`).toEqual([
      { status: 'failed', last_error: NOT_SENT_ORDER_CANCELLED },
    ]);
    // The refused confirmation and the cancellation's reply: no late confirmation.
    expect(callsTo(from)).toHaveLength(2);
    expect((await listDead(pipeline.ingest.topology)).map((l) => l.id)).not.toContain(`whatsapp:${id}`);

    // Had the message's finish been lost after the reply's write, its next copy finishes it too.
    await waitUntilOutOfOutbox(pipeline.db, id);
    await pipeline.db.sql`UPDATE webhook_messages SET status = 'queued' WHERE message_id = ${id}`;
    await pipeline.db.sql`INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() FROM webhook_messages WHERE message_id = ${id}`;
    await waitFor('the copy to finish the message', async () => ['processed', 'dead'].includes((await recordOf(id))?.status ?? ''));
    expect(await recordOf(id)).toMatchObject({ status: 'processed' });
    expect(callsTo(from)).toHaveLength(2);
  });

  it('does not send a confirmation that waited in a retry tier while the customer cancelled its order', async () => {
    const id = uniqueWamid();
    const from = '15550200025';
    // The provider asks for 8 s: the confirmation waits, and the customer's "cancel" is answered meanwhile
    // (long enough for a loaded machine to answer it first).
    pipeline.fake.behave({ kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 8 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
    await waitFor('the confirmation to wait for its retry', async () => (await replyOf(id))?.status === 'retry');
    const cancel = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: cancel, from, text: 'cancel' });
    await waitFor('the cancel processed', async () => (await recordOf(cancel))?.status === 'processed');
    await waitFor('the waiting message finished', async () => (await recordOf(id))?.status === 'processed', 30_000);
    expect(await pipeline.db.sql`SELECT status, last_error FROM outbound_messages WHERE inbound_message_id = ${id}`).toEqual([
      { status: 'failed', last_error: NOT_SENT_ORDER_CANCELLED },
    ]);
    // The refused try and the cancellation's reply.
    expect(callsTo(from)).toHaveLength(2);
    // Nor does an operator's resend send it, had its outcome been unknown.
    const [reply] = await pipeline.db.sql<{ id: string; order_id: string }[]>`
      UPDATE outbound_messages SET status = 'unknown' WHERE inbound_message_id = ${id} RETURNING id::text, order_id::text`;
    const send = createReplyClient({
      graphApiUrl: pipeline.fake.url, graphApiVersion: 'v21.0', accessToken: ACCESS_TOKEN,
      twilioApiUrl: pipeline.fake.url, twilioAccountSid: undefined, twilioAuthToken: undefined, timeoutMs: 2000,
    });
    await expect(resendReply(pipeline.db.sql, reply!.id, send, pipeline.workers[0]!.metrics)).rejects.toThrow(
      `reply ${reply!.id} confirms order ${reply!.order_id}, which the customer has cancelled since: it is not resent; settle it instead`);
    expect(await replyOf(id)).toMatchObject({ status: 'unknown' });
    expect(callsTo(from)).toHaveLength(2);
    // As it was: the unknown-replies gauge of a later test counts its own reply alone.
    await pipeline.db.sql`UPDATE outbound_messages SET status = 'failed' WHERE id = ${reply!.id}`;
  });

  it('keeps a message with a permanently failed reply dead when a lost copy is put back', async () => {
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200008', text: '1 coke' });
    await waitFor('the message to be dead', async () => (await recordOf(id))?.status === 'dead');
    await waitUntilOutOfOutbox(pipeline.db, id);
    // As if its 'dead' status had never been written, long ago.
    await pipeline.db.sql`UPDATE webhook_messages SET status = 'processing', updated_at = now() - interval '3 hours' WHERE message_id = ${id}`;
    expect(await requeueStuckMessages(pipeline.db.sql, stuckAfterMs(pipeline.ingest.config.RETRY_DELAYS_MS))).toBeGreaterThanOrEqual(1);
    await waitFor('the message to be dead again, not processed', async () => {
      const record = await recordOf(id);
      return record?.status === 'dead' && /131047/.test(record.last_error ?? '');
    });
    expect(callsTo('15550200008')).toHaveLength(1);
    expect(await replyOf(id)).toMatchObject({ status: 'failed' });
  });

  it('honours a Retry-After longer than every tier without spending a try on it', async () => {
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 2 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200009', text: '1 coke' });
    await waitFor('the message to be processed', async () => (await recordOf(id))?.status === 'processed', 10_000);
    const calls = callsTo('15550200009');
    expect(calls).toHaveLength(2);
    // The tiers here are 100 and 600 ms; the second call waited for the provider's 2 s.
    expect(calls[1]!.receivedAt - calls[0]!.receivedAt).toBeGreaterThanOrEqual(1700);
    expect(await replyOf(id)).toMatchObject({ status: 'sent' });
  });

  it('keeps touching a message that waits out a Retry-After whose record the hand-over could not mark queued, so it never looks stuck', async () => {
    const id = uniqueWamid();
    const phone = '15550200039';
    await pipeline.db.sql.unsafe(`
      CREATE FUNCTION fail_queued_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'injected failure of the queued write'; END $$;
      CREATE TRIGGER fail_queued_write BEFORE UPDATE ON webhook_messages FOR EACH ROW
        WHEN (NEW.message_id = '${id}' AND OLD.status = 'processing' AND NEW.status = 'queued') EXECUTE FUNCTION fail_queued_write();`);
    try {
      // The provider asks for an hour: the copy cycles through the 100 and 600 ms tiers meanwhile.
      pipeline.fake.behave({ kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 3600 }, 1);
      await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
      await waitFor('the first provider call', () => callsTo(phone).length === 1);
      const touched = async () => (await pipeline.db.sql<{ status: string; updated_at: Date; waiting_until: Date | null }[]>`
        SELECT status, updated_at, waiting_until FROM webhook_messages WHERE message_id = ${id}`)[0]!;
      const first = await touched();
      expect(first.status).toBe('processing');
      await waitFor('the waiting copy to touch its record', async () => (await touched()).updated_at > first.updated_at);
      const later = await touched();
      // Still the worker's record of it, now naming the provider's hour.
      expect(later.status).toBe('processing');
      expect(later.waiting_until!.getTime()).toBeGreaterThan(Date.now() + 50 * 60_000);
      expect(callsTo(phone)).toHaveLength(1);
    } finally {
      await pipeline.db.sql.unsafe('DROP TRIGGER fail_queued_write ON webhook_messages; DROP FUNCTION fail_queued_write()');
      // Its copy would cycle through the tiers for the provider's hour: dropped before the next
      // test, which counts the drops.
      const skippedBefore = await skippedCount();
      await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, phone);
      await waitFor('the waiting copy dropped', async () => (await skippedCount()) > skippedBefore);
    }
  });

  it('drops the copy of an erased customer\'s message that waits out a Retry-After, instead of parking it until the provider\'s time', async () => {
    const phone = '15550200019';
    const id = uniqueWamid();
    // The provider asks for an hour: the copy cycles through the tiers, waiting, meanwhile.
    pipeline.fake.behave({ kind: 'status', status: 429, bodyless: true, retryAfterSeconds: 3600 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: phone, text: '1 coke' });
    await waitFor('the first provider call', () => callsTo(phone).length === 1);
    const skippedBefore = await skippedCount();
    await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, phone);
    await waitFor('the waiting copy dropped', async () => (await skippedCount()) > skippedBefore);
    expect(await recordOf(id)).toMatchObject({ status: 'erased' });
    expect(callsTo(phone)).toHaveLength(1);
    // Never sent, and nothing will send it: failed at the erase, not left waiting (or taken for unknown).
    const [reply] = await pipeline.db.sql`SELECT status, last_error FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(reply).toEqual({ status: 'failed', last_error: NOT_SENT_ERASED });
  });

  it('retries a message moved into its shard queue by hand (through the default exchange) back to that queue, not to a key bound to nothing', async () => {
    const phone = '15550200029';
    const first = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: first, from: phone, text: '1 coke' });
    await waitFor('the first message to be processed', async () => (await recordOf(first))?.status === 'processed');
    // A second message of the same sender whose queue copy arrives as a shovel or the
    // management UI's "Move messages" would put it: through the default exchange, under the
    // queue's own name as its routing key.
    const moved = uniqueWamid();
    const [row] = await pipeline.db.sql<{ payload: Record<string, unknown> }[]>`
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, message_type, status, message_timestamp, payload)
      SELECT webhook_source, ${moved}, phone_number, sender_key, business_number, message_type, 'queued', message_timestamp,
             jsonb_set(payload, '{messageId}', to_jsonb(${moved}::text))
      FROM webhook_messages WHERE message_id = ${first}
      RETURNING payload`;
    pipeline.fake.behave({ kind: 'status', status: 429 }, 1);
    const topology = pipeline.ingest.topology;
    const queue = topology.shards.find((shard) => shard.routingKey === routingKeyFor(topology, phone))!.queue;
    const connection = await amqp.connect(TEST_AMQP_URL);
    const channel = await connection.createConfirmChannel();
    channel.sendToQueue(queue, Buffer.from(JSON.stringify(row!.payload)), { persistent: true, messageId: `whatsapp:${moved}` });
    await channel.waitForConfirms();
    await connection.close();
    // Refused once (429), retried through the first tier, then answered.
    await waitFor('the moved message to be processed', async () => (await recordOf(moved))?.status === 'processed');
    expect(callsTo(phone)).toHaveLength(3);
    expect(await replyOf(moved)).toMatchObject({ status: 'sent' });
  });

  it('retries a rate limit that Meta reports as 400 with a rate-limit code', async () => {
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 130429 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200003', text: '1 coke' });
    await waitFor('the message to be processed', async () => (await recordOf(id))?.status === 'processed');
    expect(callsTo('15550200003')).toHaveLength(2);
  });

  it('declares a retry tier\'s queue again when it was deleted, so that a hand-over to it goes through and its sender goes on', async () => {
    const tierQueue = pipeline.ingest.topology.retryTiers[0]!.queue;
    const connection = await amqp.connect(TEST_AMQP_URL);
    try {
      await (await connection.createChannel()).deleteQueue(tierQueue);
    } finally {
      await connection.close();
    }
    const id = uniqueWamid();
    const next = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 429 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200049', text: '1 coke' });
    await postMetaText(pipeline.ingest.baseUrl, { id: next, from: '15550200049', text: '2 coke' });
    await waitFor('both messages processed', async () => (await recordOf(id))?.status === 'processed' && (await recordOf(next))?.status === 'processed', 30_000);
    expect(callsTo('15550200049')).toHaveLength(3);
    const check = await amqp.connect(TEST_AMQP_URL);
    try {
      expect((await (await check.createChannel()).checkQueue(tierQueue)).queue).toBe(tierQueue);
    } finally {
      await check.close();
    }
  });

  it('marks a reply unknown on a 502 that does not say the message was refused, and never resends it', async () => {
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 502, bodyless: true }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200014', text: '1 coke' });
    await waitFor('the message to be processed', async () => (await recordOf(id))?.status === 'processed');
    expect(await replyOf(id)).toMatchObject({ status: 'unknown' });
    expect(callsTo('15550200014')).toHaveLength(1);
    // An operator checked the provider's console (the tests below count the unknown replies).
    const [reply] = (await listUnknownReplies(pipeline.db.sql)).filter((r) => r.inbound_message_id === id);
    await settleReply(pipeline.db.sql, reply!.id, 'sent');
  });

  it('marks a reply unknown when the provider does not answer in time, and never resends it', async () => {
    const id = uniqueWamid();
    const worker = pipeline.workers[0]!;
    pipeline.fake.behave({ kind: 'hang' }, 1);
    const quick = await pipeline.startWorker({ REPLY_TIMEOUT_MS: '300' });
    await worker.stop();
    pipeline.workers.splice(0, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200004', text: '1 coke' });
    await waitFor('the message to be processed', async () => (await recordOf(id))?.status === 'processed');
    expect(await replyOf(id)).toMatchObject({ status: 'unknown' });
    expect(callsTo('15550200004')).toHaveLength(1);
    // Counted just after the commit that the check above saw.
    await waitFor('the unknown confirmation counted', async () =>
      /wagate_confirmations_total\{provider="whatsapp",result="unknown",role="worker"\} 1\b/.test(await quick.metrics.registry.metrics()));

    // Surfaced as a gauge until someone decides.
    await waitFor('the unknown-replies gauge', async () =>
      /wagate_replies_unknown\{provider="whatsapp",role="worker"\} 1\b/.test(await quick.metrics.registry.metrics()),
    );

    // An operator resends it on purpose. A resend that fails without sending leaves it unknown, resendable.
    const [reply] = (await listUnknownReplies(pipeline.db.sql)).filter((r) => r.inbound_message_id === id);
    expect(reply).toBeDefined();
    const send = createReplyClient({
      graphApiUrl: pipeline.fake.url, graphApiVersion: 'v21.0', accessToken: ACCESS_TOKEN,
      twilioApiUrl: pipeline.fake.url, twilioAccountSid: undefined, twilioAuthToken: undefined, timeoutMs: 2000,
    });
    pipeline.fake.behave({ kind: 'status', status: 503 }, 1);
    await expect(resendReply(pipeline.db.sql, reply!.id, send, quick.metrics)).rejects.toThrow(/resend failed, nothing was sent/);
    expect(await replyOf(id)).toMatchObject({ status: 'unknown' });
    expect(await resendReply(pipeline.db.sql, reply!.id, send, quick.metrics)).toBe('sent');
    expect(await replyOf(id)).toMatchObject({ status: 'sent' });
    expect(callsTo('15550200004')).toHaveLength(3);
  });

  it('settles an unknown reply as an operator found it, without sending', async () => {
    // The worker left running by the previous test answers after 300 ms at most.
    const { id, reply } = await unknownReplyFrom('15550200016');
    const before = await countUnknownReplies(pipeline.db.sql);
    await settleReply(pipeline.db.sql, reply.id, 'failed');
    expect(await replyOf(id)).toMatchObject({ status: 'failed' });
    expect((await countUnknownReplies(pipeline.db.sql)).whatsapp).toBe(before.whatsapp - 1);
    await expect(settleReply(pipeline.db.sql, reply!.id, 'sent')).rejects.toThrow(/reply \d+ is failed, not unknown; only unknown replies can be settled/);
    expect(callsTo('15550200016')).toHaveLength(1);
  });

  it('marks unknown again a reply whose resend was killed after marking it sending, and never calls the provider for it', async () => {
    // The worker left running answers after 300 ms at most.
    const { id, reply } = await unknownReplyFrom('15550200021');
    await runWagateKilledAt('replies.resend-after-mark', ['replies', 'resend', '--id', reply!.id], pipeline.env);
    // Its message is finished, so no queue copy will ever come for it: only the workers' sweep.
    expect(await replyOf(id)).toMatchObject({ status: 'sending' });
    expect((await recordOf(id))!.status).toBe('processed');
    await waitFor('a worker to mark the abandoned resend unknown', async () => (await replyOf(id))?.status === 'unknown',
      abandonedSendAfterMs(300) + 20_000);
    expect((await listUnknownReplies(pipeline.db.sql)).find((r) => r.id === reply!.id)).toMatchObject({ last_error: SEND_ABANDONED });
    expect(callsTo('15550200021')).toHaveLength(1);
  }, 60_000);

  it('makes no second order and no second reply when the broker redelivers a message', async () => {
    // From here on, a worker with the default reply timeout: the quick one's 300 ms would mark a
    // reply unknown whenever a busy machine made an ordinary call that slow.
    const quick = pipeline.workers[0]!;
    await pipeline.startWorker();
    await quick.stop();
    pipeline.workers.splice(pipeline.workers.indexOf(quick), 1);
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200005', text: '2 margherita' });
    await waitFor('the message to be processed', async () => (await recordOf(id))?.status === 'processed');
    const [row] = await pipeline.db.sql<{ payload: Record<string, unknown> }[]>`SELECT payload FROM webhook_messages WHERE message_id = ${id}`;
    const skippedCount = async () => seriesValue(await pipeline.workers[0]!.metrics.registry.metrics(), 'wagate_worker_messages_total', { outcome: 'skipped' });
    const skippedBefore = await skippedCount();
    const connection = await amqp.connect(TEST_AMQP_URL);
    const channel = await connection.createConfirmChannel();
    const topology = pipeline.ingest.topology;
    for (let copy = 0; copy < 2; copy += 1) {
      channel.publish(topology.exchange, routingKeyFor(topology, '15550200005'), Buffer.from(JSON.stringify(row!.payload)), {
        persistent: true,
        messageId: `whatsapp:${id}`,
      });
    }
    await channel.waitForConfirms();
    await connection.close();
    await waitFor('the copies to be consumed', async () => (await skippedCount()) - skippedBefore === 2);
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).toHaveLength(1);
    expect(callsTo('15550200005')).toHaveLength(1);
  });

  it('moves a reply’s delivery status forward only, whatever order receipts arrive in', async () => {
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550200006', text: '1 coke' });
    await waitFor('the reply to be sent', async () => (await replyOf(id))?.status === 'sent');
    const { provider_message_id: wamid } = (await replyOf(id))!;
    const receipt = (status: string) => ({
      object: 'whatsapp_business_account',
      entry: [{ id: 'waba', changes: [{ field: 'messages', value: {
        messaging_product: 'whatsapp',
        metadata: { display_phone_number: '15550783881', phone_number_id: '106540352242922' },
        statuses: [{ id: wamid, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: '15550200006' }],
      } }] }],
    });
    await postMeta(pipeline.ingest.baseUrl, receipt('read'));
    expect((await replyOf(id))!.delivery_status).toBe('read');
    await postMeta(pipeline.ingest.baseUrl, receipt('sent'));
    await postMeta(pipeline.ingest.baseUrl, receipt('delivered'));
    expect((await replyOf(id))!.delivery_status).toBe('read');
    await postMeta(pipeline.ingest.baseUrl, receipt('failed'));
    expect((await replyOf(id))!.delivery_status).toBe('failed');
    await postMeta(pipeline.ingest.baseUrl, receipt('read'));
    expect((await replyOf(id))!.delivery_status).toBe('failed');
    const stats = await fetch(`${pipeline.ingest.baseUrl}${STATS_PATH}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(((await stats.json()) as { deliveryStatus: Record<string, number> }).deliveryStatus.failed).toBeGreaterThanOrEqual(1);
    // Receipts never create orders or messages.
    expect(await pipeline.db.sql`SELECT 1 FROM webhook_messages WHERE message_id = ${wamid}`).toHaveLength(0);
  });
});
