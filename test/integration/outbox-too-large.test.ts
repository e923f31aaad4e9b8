import type { QueuedEntry } from '../../src/ledger/recorder';
import type { QueueMessage } from '../../src/queue/message';
import { commitQueuedText, startRelayRig, type RelayRig } from '../support/relay';
import { counterValue } from '../support/in-process';
import { startOwnRabbitmq, type OwnRabbitmq } from '../support/own-rabbitmq';

/**
 * A message larger than the broker takes is refused every time it is published (RabbitMQ closes
 * the channel). Left in the outbox, it was tried again every 30 s for good, and its sender's
 * later messages waited behind it. It is recorded dead instead, with its size and the limit.
 * The broker is a node of this file's own, whose max_message_size is the relay's limit.
 */
const LIMIT = 8192;
let rabbitmq: OwnRabbitmq;
let rig: RelayRig;
beforeAll(async () => {
  rabbitmq = await startOwnRabbitmq(`max_message_size = ${LIMIT}\n`);
  rig = await startRelayRig('wagate-test too large', { confirmTimeoutMs: 10_000, maxMessageBytes: LIMIT }, undefined, rabbitmq.url);
}, 120_000);
afterAll(async () => {
  await rig?.stop();
  await rabbitmq?.stop();
});

const commit = (sender: string, text: string, db = rig.db) => commitQueuedText(db, sender, text);

const recordOf = async (entry: QueuedEntry, db = rig.db) =>
  (await db.sql<{ status: string; last_error: string | null }[]>`SELECT status, last_error FROM webhook_messages WHERE id = ${entry.rowId}`)[0];
const outboxRows = async () => (await rig.db.sql`SELECT 1 FROM outbox`).length;
const queuedTexts = async (sender: string) =>
  (await rig.probe.drainWork(rig.topology))
    .map((message) => JSON.parse(message.content.toString()) as QueueMessage)
    .filter((body) => body.senderKey === sender)
    .map((body) => (body.content as { text: { body: string } }).text.body);
const tooLarge = () => counterValue(rig.metrics, 'wagate_messages_too_large_total', {});

it('is what the broker refuses: published anyway, it is not confirmed', async () => {
  const unguarded = await startRelayRig('wagate-test too large, unguarded', { confirmTimeoutMs: 10_000 }, undefined, rabbitmq.url);
  try {
    const large = await commit('15550940009', 'z'.repeat(LIMIT), unguarded.db);
    expect(await unguarded.relay.publishOwned([large])).toBe(false);
    expect((await recordOf(large, unguarded.db))!.status).toBe('queued');
  } finally {
    await unguarded.stop();
  }
});

it('records a message too large for the broker dead, with its size, and publishes its sender\'s next one as owner', async () => {
  const counted = await tooLarge();
  const sender = '15550940001';
  const large = await commit(sender, 'x'.repeat(LIMIT));
  expect(await rig.relay.publishOwned([large])).toBe(false);
  expect(await recordOf(large)).toEqual({
    status: 'dead',
    last_error: expect.stringMatching(new RegExp(`^\\d{4,} bytes for the queue, more than BROKER_MAX_MESSAGE_BYTES \\(${LIMIT}\\): the broker would refuse it$`)),
  });
  expect(await outboxRows()).toBe(0);
  expect(await tooLarge()).toBe(counted + 1);
  expect(await rig.relay.publishOwned([await commit(sender, 'cancel')])).toBe(true);
  expect(await queuedTexts(sender)).toEqual(['cancel']);
});

it('does the same in a sweep, and the sweep goes on with the rows after it', async () => {
  const counted = await tooLarge();
  const sender = '15550940002';
  const large = await commit(sender, 'y'.repeat(LIMIT));
  const order = await commit(sender, '2 pizzas');
  await rig.db.sql`UPDATE outbox SET lease_until = now() - interval '1 second' WHERE webhook_message_id IN (${large.rowId}, ${order.rowId})`;
  expect(await rig.relay.sweepOnce()).toBe(1);
  expect((await recordOf(large))!.status).toBe('dead');
  expect(await tooLarge()).toBe(counted + 1);
  expect(await outboxRows()).toBe(0);
  expect(await queuedTexts(sender)).toEqual(['2 pizzas']);
  expect(await rig.relay.publishOwned([await commit(sender, 'cancel')])).toBe(true);
  expect(await queuedTexts(sender)).toEqual(['cancel']);
});
