import { randomUUID } from 'node:crypto';
import amqp, { type ConsumeMessage } from 'amqplib';
import { UNSENT_ATTEMPTS_HEADER } from '../../src/queue/headers';
import { parseDelivery } from '../../src/worker/delivery';
import { createHandOn } from '../../src/worker/hand-on';
import { unsentAttemptsOf } from '../../src/worker/unsent-attempts';
import { createPublisher } from '../../src/queue/publisher';
import { routingKeyFor } from '../../src/queue/topology';
import type { QueueMessage } from '../../src/queue/message';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { TEST_AMQP_URL } from '../support/amqp';
import { eraseEverywhere, listDead, replayDead } from '../support/dead-letters';
import { NOT_SENT_ERASED } from '../../src/orders/erasure';
import { startPipeline, waitUntilOutOfOutbox, callsTo, type Pipeline } from '../support/pipeline';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A message dead-lettered while its reply is 'sending': under the token of an attempt whose
 * mark went unanswered (it called nothing), the reply was never sent, so it fails and a replay
 * sends it; under any other attempt it may have been sent, and is unknown.
 */
let pipeline: Pipeline;
let connection: amqp.ChannelModel;
let channel: amqp.ConfirmChannel;

beforeAll(async () => {
  pipeline = await startPipeline({ RETRY_DELAYS_MS: '100' });
  connection = await amqp.connect(TEST_AMQP_URL);
  channel = await connection.createConfirmChannel();
});

afterAll(async () => {
  await connection?.close();
  await pipeline?.stop();
});

/** A message queued with no worker running, then claimed and its reply left 'sending' under `token`, as a mark leaves it. */
async function sendingMessage(from: string, token: string): Promise<{ id: string; delivery: ConsumeMessage; payload: QueueMessage }> {
  const id = uniqueWamid();
  expect((await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' })).status).toBe(200);
  await waitUntilOutOfOutbox(pipeline.db, id);
  await pipeline.db.sql`UPDATE webhook_messages SET status = 'processing' WHERE message_id = ${id}`;
  await pipeline.db.sql`
    INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status, sending_attempt, attempts)
    VALUES (${`reply:whatsapp:${id}`}, 'whatsapp', ${id}, ${from}, '106540352242922', 'order_confirmation', 'Order received', 'sending', ${token}, 1)`;
  const delivery = await consumeFromShard(from);
  const payload = parseDelivery(delivery);
  if (typeof payload === 'string') throw new Error(payload);
  return { id, delivery, payload };
}

/** The next message of the sender's shard queue, consumed as a worker takes it: a shard queue has a single active consumer, which basic.get may not bypass. */
async function consumeFromShard(from: string): Promise<ConsumeMessage> {
  const topology = pipeline.ingest.topology;
  const queue = topology.shards.find((shard) => shard.routingKey === routingKeyFor(topology, from))!.queue;
  return new Promise<ConsumeMessage>((resolve) => {
    void channel.consume(queue, (message) => {
      if (message) void channel.cancel(message.fields.consumerTag).then(() => resolve(message));
    });
  });
}

/** A worker started now processes the message, and its reply reaches the provider exactly once. */
async function expectSentOnceByAWorker(id: string, from: string): Promise<void> {
  await pipeline.startWorker();
  try {
    await waitFor('the replayed message processed', async () =>
      (await pipeline.db.sql`SELECT 1 FROM webhook_messages WHERE message_id = ${id} AND status = 'processed'`).length === 1);
    expect(await replyOf(id)).toBe('sent');
    expect(callsTo(pipeline, from)).toHaveLength(1);
  } finally {
    for (const worker of pipeline.workers.splice(0)) await worker.stop();
  }
}

function handOn(log = createLogger('silent', 'test-hand-on')) {
  return createHandOn({
    topology: pipeline.ingest.topology,
    publisher: createPublisher(pipeline.ingest.broker, 5_000),
    isHeld: () => true,
    sql: pipeline.db.sql,
    log,
    metrics: createMetrics('worker', { processMetrics: false }),
  });
}

const replyOf = async (id: string) =>
  (await pipeline.db.sql<{ status: string }[]>`SELECT status FROM outbound_messages WHERE inbound_message_id = ${id}`)[0]!.status;

it('fails a reply left sending by an attempt that called nothing, carries the token, and a replay sends it once', async () => {
  const unanswered = randomUUID();
  const from = '15550910001';
  const { id, delivery, payload } = await sendingMessage(from, unanswered);
  const unsent = unsentAttemptsOf(delivery);
  unsent.add(unanswered);
  await handOn().deadLetter(channel, delivery, payload, 'retries exhausted: test', unsent);

  expect(await replyOf(id)).toBe('failed');
  const letter = await waitFor('the dead letter', async () => (await channel.get(pipeline.ingest.topology.deadQueue, { noAck: true })) || undefined);
  expect(String(letter.properties.headers?.[UNSENT_ATTEMPTS_HEADER])).toBe(unanswered);
  // Back in the dead-letter queue for the replay, as `dlq replay` finds it.
  await channel.publish('', pipeline.ingest.topology.deadQueue, letter.content, letter.properties);
  await channel.waitForConfirms();

  expect((await replayDead(pipeline.db.sql, pipeline.ingest.topology, [`whatsapp:${id}`])).replayed).toEqual([`whatsapp:${id}`]);
  await expectSentOnceByAWorker(id, from);
}, 60_000);

it('replays a letter whose dead write did not land: the reply left sending under its token is reopened, and the copy goes without the token', async () => {
  const unanswered = randomUUID();
  const from = '15550910003';
  const { id, delivery } = await sendingMessage(from, unanswered);
  // The letter went out; the dead write that follows it did not (Postgres went away): the
  // record stays 'processing' (long enough for a replay to take it) and the reply 'sending'.
  await channel.publish(pipeline.ingest.topology.deadExchange, pipeline.ingest.topology.deadRoutingKey, delivery.content, {
    ...delivery.properties,
    headers: { ...delivery.properties.headers, [UNSENT_ATTEMPTS_HEADER]: unanswered },
  });
  await channel.waitForConfirms();
  channel.ack(delivery);
  await pipeline.db.sql`UPDATE webhook_messages SET updated_at = now() - interval '1 minute' WHERE message_id = ${id}`;

  expect((await replayDead(pipeline.db.sql, pipeline.ingest.topology, [`whatsapp:${id}`])).replayed).toEqual([`whatsapp:${id}`]);
  expect(await replyOf(id)).toBe('pending');
  const replayed = await consumeFromShard(from);
  expect(replayed.properties.headers?.[UNSENT_ATTEMPTS_HEADER]).toBeUndefined();
  channel.nack(replayed, false, true);

  await expectSentOnceByAWorker(id, from);
}, 60_000);

it('drops the copy of an erased customer\'s message without a letter, failing as never sent the reply its attempt called nothing for', async () => {
  const unanswered = randomUUID();
  const from = '15550910004';
  const { id, delivery, payload } = await sendingMessage(from, unanswered);
  expect(await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, `+${from}`)).toMatchObject({ messages: 1 });
  const unsent = unsentAttemptsOf(delivery);
  unsent.add(unanswered);
  await handOn().deadLetter(channel, delivery, payload, 'retries exhausted: test', unsent);
  const [reply] = await pipeline.db.sql`SELECT status, last_error FROM outbound_messages WHERE inbound_message_id = ${id}`;
  expect(reply).toEqual({ status: 'failed', last_error: NOT_SENT_ERASED });
  expect((await listDead(pipeline.ingest.topology)).map((letter) => letter.id)).not.toContain(`whatsapp:${id}`);
});

it('marks unknown a reply left sending by another attempt, which may have called the provider', async () => {
  const from = '15550910002';
  const { id, delivery, payload } = await sendingMessage(from, randomUUID());
  const unsent = unsentAttemptsOf(delivery);
  unsent.add(randomUUID());
  await handOn().deadLetter(channel, delivery, payload, 'retries exhausted: test', unsent);
  expect(await replyOf(id)).toBe('unknown');
  await channel.get(pipeline.ingest.topology.deadQueue, { noAck: true });
});

it('names in full, in its log, a reply the provider accepted whose sent could not be recorded, for an operator to settle', async () => {
  const from = '15550910006';
  const { delivery, payload } = await sendingMessage(from, randomUUID());
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('info', 'test-hand-on', { write: (line: string) => void lines.push(JSON.parse(line)) });
  // Digit runs that the masked reason would hide: a reply id past a million, a SID that holds some.
  const accepted = { replyId: '12345678', providerMessageId: 'SM1234567890abcdef1234567890abcdef' };
  const error = Object.assign(new Error(`the provider accepted reply ${accepted.replyId} as ${accepted.providerMessageId}, but that could not be recorded`), { acceptedUnrecorded: accepted });
  await handOn(log).routeFailure(channel, delivery, payload, error);
  const named = lines.find((line) => line.replyId === accepted.replyId);
  expect(named).toMatchObject({ ...accepted, messageId: payload.messageId, msg: expect.stringContaining(`wagate replies settle --id 12345678 --as sent --provider-id ${accepted.providerMessageId}`) });
}, 60_000);
