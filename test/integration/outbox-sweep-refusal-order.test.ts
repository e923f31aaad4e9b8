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
const OTHERS = ['15550700002', '15550700003', '15550700004', '15550700005', '15550700006'];

let rig: RelayRig;
/** The sender whose queue is unbound during the next publish, so the broker returns its rows as unroutable. */
let refuseOnce: string | null = null;

beforeAll(async () => {
  rig = await startRelayRig('outbox-sweep-refusal-order-test', { confirmTimeoutMs: 10_000, sweepBatch: 2 }, (broker, topology) => {
    const publisher = createPublisher(broker, 10_000);
    // The real publisher on the real broker, the refused sender's queue unbound for one publish.
    const refusing: Publisher = {
      async publishAll(exchange, entries, onLateAnswer) {
        const sender = refuseOnce;
        if (sender === null) return publisher.publishAll(exchange, entries, onLateAnswer);
        refuseOnce = null;
        const shard = topology.shards.find((each) => each.routingKey === routingKeyFor(topology, sender))!;
        const channel = broker.channel()!;
        await channel.unbindQueue(shard.queue, topology.exchange, shard.routingKey);
        try {
          return await publisher.publishAll(exchange, entries, onLateAnswer);
        } finally {
          await channel.bindQueue(shard.queue, topology.exchange, shard.routingKey);
        }
      },
    };
    return refusing;
  });
}, 30_000);

afterAll(async () => {
  await rig?.stop();
});

/** Another sender, on another shard than `sender`. */
const otherThan = (sender: string) => OTHERS.find((key) => routingKeyFor(rig.topology, key) !== routingKeyFor(rig.topology, sender))!;

/**
 * A queued message with its outbox row, its lease run out: waiting for a sweep, as after an
 * outage. `attempts` as earlier sweeps left it: a refusal then holds the row back that many
 * seconds (plus one), longer than the test's steps take.
 */
async function waiting(senderKey: string, text: string, attempts = 0): Promise<string> {
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
    INSERT INTO outbox (webhook_message_id, lease_until, attempts) SELECT id, now() - interval '1 second', ${attempts} FROM m`;
  return `whatsapp:${messageId}`;
}

const drained = async () => (await rig.probe.drainWork(rig.topology)).map((message) => message.properties.messageId);

it('holds a sender\'s later rows behind its row the broker refused, while other senders\' rows go out', async () => {
  const other = otherThan(SENDER);
  // Two batches of two, in commit order: [order, other], [cancel, other].
  const order = await waiting(SENDER, '2 pizzas', 4);
  const first = await waiting(other, 'menu');
  const cancel = await waiting(SENDER, 'cancel');
  const second = await waiting(other, 'status');

  // The order is refused; the cancel behind it waits, the other sender's rows go out.
  refuseOnce = SENDER;
  expect(await rig.relay.sweepOnce()).toBe(2);
  expect(await drained()).toEqual([first, second]);

  // Once its backoff (5 s) has passed, a later sweep publishes the order, then the cancel.
  await waitFor('the refused order and the cancel behind it to be published', async () => {
    await rig.relay.sweepOnce();
    return (await rig.db.sql`SELECT 1 FROM outbox`).length === 0;
  });
  expect(await drained()).toEqual([order, cancel]);
});

it('looks past a claim\'s whole window of rows held back, so one refused sender does not stop the others', async () => {
  const held = '15550700009';
  const other = otherThan(held);
  // Refused with a backoff of 21 s, far beyond this test, and 10 more rows of its sender: with
  // batches of 2 a claim looks at 8 rows due, all of them this sender's.
  await waiting(held, 'first', 20);
  refuseOnce = held;
  expect(await rig.relay.sweepOnce()).toBe(0);
  for (let index = 0; index < 10; index += 1) await waiting(held, `later ${index}`);
  const behind = [await waiting(other, 'menu'), await waiting(other, 'status')];

  expect(await rig.relay.sweepOnce()).toBe(2);
  expect(await drained()).toEqual(behind);
  const [left] = await rig.db.sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM outbox`;
  expect(left!.n).toBe(11);
});
