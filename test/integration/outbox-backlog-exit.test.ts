import type { QueueMessage } from '../../src/queue/message';
import { commitQueuedText, startRelayRig, type RelayRig } from '../support/relay';
import { waitFor } from '../support/wait';

/**
 * After an outage the outbox holds a backlog, and the rows committed meanwhile wait behind it,
 * for the sweep. Under steady traffic that wait must end once the backlog has gone: only the
 * senders with rows still waiting need to wait. Before, every new row went to the sweep, due at
 * once, so each poll found rows waiting again and the relay never published as owner again for
 * as long as messages kept coming.
 */
let rig: RelayRig;
let brokerUp = false;
beforeAll(async () => {
  rig = await startRelayRig('wagate-test backlog exit', { confirmTimeoutMs: 5_000, leaseSeconds: 12, canPublish: () => brokerUp });
});
afterAll(async () => rig.stop());

const commit = (sender: string, text: string) => commitQueuedText(rig.db, sender, text);

const LOOPS = 4;
/**
 * Enough that each sender writes only every 200 ms or so: a sender whose next message commits
 * before the sweep has published the one before stays behind, as it must.
 */
const SENDERS = 200;
const senderOf = (index: number) => `1555093${String(index).padStart(4, '0')}`;

it('publishes as owner again once the backlog has gone, under steady traffic, with every sender\'s messages in order', async () => {
  const { relay } = rig;
  // The backlog an outage left: ten messages of each of the first 100 senders, committed while
  // the broker was away, so handed to the sweep.
  const sent = new Map<string, number>();
  const next = (sender: string) => {
    const n = (sent.get(sender) ?? 0) + 1;
    sent.set(sender, n);
    return `${n}`;
  };
  for (let round = 0; round < 10; round += 1) {
    for (let s = 0; s < SENDERS / 2; s += 1) expect(await relay.publishOwned([await commit(senderOf(s), next(senderOf(s)))])).toBe(false);
  }
  brokerUp = true;

  // Steady traffic from all the senders, each loop its own, each sender's commits one after another.
  const results: boolean[] = [];
  let going = true;
  const traffic = Promise.all(Array.from({ length: LOOPS }, async (_, loop) => {
    for (let i = 0; going; i += 1) {
      const sender = senderOf(loop + LOOPS * (i % (SENDERS / LOOPS)));
      void relay.publishOwned([await commit(sender, next(sender))]).then((ok) => results.push(ok));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }));
  // The relay's poll, as its timer runs it.
  const polls = setInterval(() => void relay.sweepOnce().catch(() => undefined), 200);
  try {
    await waitFor('the backlog to go and the owner to publish its own rows again, while traffic goes on', async () => {
      const [waiting] = await rig.db.sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM outbox WHERE lease_until < now() OR attempts > 0`;
      const recent = results.slice(-50);
      return waiting!.n === 0 && recent.length === 50 && recent.every(Boolean);
    }, 60_000);
  } finally {
    going = false;
    clearInterval(polls);
    await traffic;
  }
  await waitFor('every publish to settle', async () => results.length === [...sent.values()].reduce((sum, n) => sum + n, 0) - (10 * SENDERS) / 2);
  // A sweep under way may have made its last claim already: the next one takes what is left.
  await relay.sweepOnce();
  await relay.sweepOnce();
  await waitFor('the outbox to empty', async () => (await rig.db.sql`SELECT 1 FROM outbox`).length === 0);

  // Each message once, and each sender's in the order they were committed.
  const bySender = new Map<string, string[]>();
  for (const message of await rig.probe.drainWork(rig.topology)) {
    const body = JSON.parse(message.content.toString()) as QueueMessage;
    bySender.set(body.senderKey, [...(bySender.get(body.senderKey) ?? []), (body.content as { text: { body: string } }).text.body]);
  }
  for (const [sender, count] of sent) expect([sender, bySender.get(sender)]).toEqual([sender, Array.from({ length: count }, (_, i) => `${i + 1}`)]);
});

it('keeps a sender behind a row whose release failed, leased to this process and unseen by the read, until its lease could have expired', async () => {
  const { relay } = rig;
  brokerUp = false;
  const sender = '15550939999';
  // A release that Postgres refuses: the row keeps its lease, with attempts 0, as if still being published.
  await rig.db.sql.unsafe(`
    CREATE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'release refused by the test'; END $$;
    CREATE TRIGGER refuse_release BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_release()`);
  const first = await commit(sender, '2 pizzas');
  try {
    expect(await relay.publishOwned([first])).toBe(false);
  } finally {
    await rig.db.sql.unsafe('DROP TRIGGER refuse_release ON outbox; DROP FUNCTION refuse_release()');
  }
  expect((await rig.db.sql<{ attempts: number }[]>`SELECT attempts FROM outbox WHERE webhook_message_id = ${first.rowId} AND lease_until > now()`)).toEqual([{ attempts: 0 }]);
  // Another sender's row waits for the sweep, so the relay asks whose rows wait.
  expect(await relay.publishOwned([await commit('15550939998', 'hello')])).toBe(false);
  brokerUp = true;
  // A poll sweeps what it sees, not the row whose release failed, and must not leave the backlog state.
  expect(await relay.sweepOnce()).toBe(1);
  // Published at once, "cancel" would reach the queue long before the order it cancels.
  expect(await relay.publishOwned([await commit(sender, 'cancel')])).toBe(false);
  // Once the first row's lease has run out (here: made to), the sweep sends both, in order.
  await rig.db.sql`UPDATE outbox SET lease_until = now() - interval '1 second' WHERE webhook_message_id = ${first.rowId}`;
  expect(await relay.sweepOnce()).toBe(2);
  const texts = (await rig.probe.drainWork(rig.topology))
    .map((message) => JSON.parse(message.content.toString()) as QueueMessage)
    .filter((body) => body.senderKey === sender)
    .map((body) => (body.content as { text: { body: string } }).text.body);
  expect(texts).toEqual(['2 pizzas', 'cancel']);
});
