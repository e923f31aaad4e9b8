import { randomBytes } from 'node:crypto';
import type { QueueMessage } from '../../src/queue/message';
import { createPublisher, type Publisher } from '../../src/queue/publisher';
import { routingKeyFor } from '../../src/queue/topology';
import { startRelayRig, type RelayRig } from '../support/relay';
import { waitFor } from '../support/wait';

/**
 * A sweep after a broker outage publishes the outbox in commit order, batch after batch. When
 * the broker refuses one row of a batch (returned unroutable here; a nack, or a deadline that
 * left the row unwritten, go the same way), that row waits for a later sweep, and so do the
 * rows of its sender after it: the next batch of the same sweep used to publish them, so a
 * sender's "cancel" reached its queue before the "2 pizzas" refused a moment earlier.
 */
const SENDER = '15550700001';

let rig: RelayRig;
let publishes = 0;

beforeAll(async () => {
  rig = await startRelayRig('outbox-sweep-refusal-order-test', { confirmTimeoutMs: 10_000, sweepBatch: 2 }, (broker, topology) => {
    const publisher = createPublisher(broker, 10_000);
    const shard = topology.shards.find((each) => each.routingKey === routingKeyFor(topology, SENDER))!;
    // The real publisher on the real broker; during the sweep's first batch the sender's queue is
    // unbound, so the broker returns that batch's row of the sender as unroutable.
    const refusingFirstBatch: Publisher = {
      async publishAll(exchange, entries, onLateAnswer) {
        publishes += 1;
        if (publishes > 1) return publisher.publishAll(exchange, entries, onLateAnswer);
        const channel = broker.channel()!;
        await channel.unbindQueue(shard.queue, topology.exchange, shard.routingKey);
        try {
          return await publisher.publishAll(exchange, entries, onLateAnswer);
        } finally {
          await channel.bindQueue(shard.queue, topology.exchange, shard.routingKey);
        }
      },
    };
    return refusingFirstBatch;
  });
}, 30_000);

afterAll(async () => {
  await rig?.stop();
});

/** A queued message with its outbox row, its lease run out: waiting for a sweep, as after an outage. */
async function waiting(senderKey: string, text: string): Promise<string> {
  const messageId = `wamid.sweep.${randomBytes(6).toString('hex')}`;
  const payload: QueueMessage = {
    v: 1, source: 'whatsapp', messageId, from: senderKey, senderKey, business: '100',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { body: text },
  };
  await rig.db.sql`
    WITH m AS (
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
      VALUES ('whatsapp', ${messageId}, ${senderKey}, ${senderKey}, '100', 'queued', ${rig.db.sql.json(payload as never)})
      RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until) SELECT id, now() - interval '1 second' FROM m`;
  return `whatsapp:${messageId}`;
}

it('holds a sender\'s later rows behind its row the broker refused, while other senders\' rows go out', async () => {
  // Another sender, on another shard, whose rows go out meanwhile.
  const OTHER = ['15550700002', '15550700003', '15550700004', '15550700005'].find((key) => routingKeyFor(rig.topology, key) !== routingKeyFor(rig.topology, SENDER))!;
  // Two batches of two, in commit order: [order, other], [cancel, other].
  const order = await waiting(SENDER, '2 pizzas');
  const first = await waiting(OTHER, 'menu');
  const cancel = await waiting(SENDER, 'cancel');
  const second = await waiting(OTHER, 'status');

  // The order is refused; the cancel behind it waits, the other sender's rows go out.
  expect(await rig.relay.sweepOnce()).toBe(2);
  const drained = await rig.probe.drainWork(rig.topology);
  expect(drained.map((message) => message.properties.messageId)).toEqual([first, second]);

  // Once its backoff has passed, a later sweep publishes the order, then the cancel.
  await waitFor('the refused order and the cancel behind it to be published', async () => {
    await rig.relay.sweepOnce();
    return (await rig.db.sql`SELECT 1 FROM outbox`).length === 0;
  });
  expect((await rig.probe.drainWork(rig.topology)).map((message) => message.properties.messageId)).toEqual([order, cancel]);
});
