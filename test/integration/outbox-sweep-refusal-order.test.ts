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
/** Set: the next publish is not answered (nothing is written); its late answer is left to the test. */
let holdNext = false;
let answerLate: ((index: number, ok: boolean) => void) | undefined;

beforeAll(async () => {
  rig = await startRelayRig('outbox-sweep-refusal-order-test', { confirmTimeoutMs: 10_000, sweepBatch: 2 }, (broker, topology) => {
    const publisher = createPublisher(broker, 10_000);
    // The real publisher on the real broker, the refused sender's queue unbound for one publish.
    const refusing: Publisher = {
      async publishAll(exchange, entries, onLateAnswer, order) {
        if (holdNext) {
          holdNext = false;
          answerLate = onLateAnswer;
          return entries.map(() => null);
        }
        const sender = refuseOnce;
        if (sender === null) return publisher.publishAll(exchange, entries, onLateAnswer, order);
        refuseOnce = null;
        const shard = topology.shards.find((each) => each.routingKey === routingKeyFor(topology, sender))!;
        const channel = broker.channel()!;
        await channel.unbindQueue(shard.queue, topology.exchange, shard.routingKey);
        try {
          return await publisher.publishAll(exchange, entries, onLateAnswer, order);
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
  return (await committed(senderKey, text, { leaseSeconds: -1, attempts })).amqpId;
}

/** A queued message with its outbox row, its lease running `leaseSeconds` from now (as its owner's, when positive). */
async function committed(senderKey: string, text: string, { leaseSeconds, attempts }: { leaseSeconds: number; attempts: number }) {
  const messageId = `wamid.sweep.${randomBytes(6).toString('hex')}`;
  const payload: QueueMessage = {
    v: 1, source: 'whatsapp', messageId, from: senderKey, senderKey, business: '100',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { body: text },
  };
  const [row] = await rig.db.sql<{ id: string }[]>`
    WITH m AS (
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
      VALUES ('whatsapp', ${messageId}, ${senderKey}, ${senderKey}, '100', 'queued', ${rig.db.sql.json(payload as never)})
      RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until, attempts) SELECT id, now() + make_interval(secs => ${leaseSeconds}), ${attempts} FROM m
    RETURNING webhook_message_id::text AS id`;
  return { amqpId: `whatsapp:${messageId}`, entry: { rowId: row!.id, source: 'whatsapp' as const, messageId, payload, traceparent: '', leaseStartedAtMs: Date.now() } };
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

it('holds a sender\'s later rows behind its row whose owner\'s publish the broker has not answered, until that row goes first', async () => {
  const sender = '15550700010';
  const other = otherThan(sender);
  // No backlog left by the tests before: the owner publishes at once again.
  await rig.db.sql`DELETE FROM outbox`;
  expect(await rig.relay.sweepOnce()).toBe(0);
  // The owner publishes its row at once after the commit; the broker does not answer it.
  const order = await committed(sender, '2 pizzas', { leaseSeconds: 12, attempts: 0 });
  holdNext = true;
  expect(await rig.relay.publishOwned([order.entry])).toBe(false);
  expect(answerLate).toBeDefined();
  // Rows left to the sweep meanwhile (a pod in a backlog releases what it commits): the same
  // sender's cancel, and another sender's message.
  const cancel = await waiting(sender, 'cancel');
  const menu = await waiting(other, 'menu');

  expect(await rig.relay.sweepOnce()).toBe(1);
  expect(await drained()).toEqual([menu]);

  // The channel closes: every unanswered publish is refused, and the row goes to the sweep.
  answerLate!(0, false);
  await waitFor('the order, then the cancel behind it, to be published', async () => {
    await rig.relay.sweepOnce();
    return (await rig.db.sql`SELECT 1 FROM outbox`).length === 0;
  });
  expect(await drained()).toEqual([order.amqpId, cancel]);
});
