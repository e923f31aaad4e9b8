import { randomBytes } from 'node:crypto';
import type { QueuedEntry } from '../../src/ledger/recorder';
import type { QueueMessage } from '../../src/queue/message';
import { startRelayRig, type RelayRig } from '../support/relay';

/**
 * The owner publishes the rows it just committed within their outbox lease; a sweeper claims
 * them once it runs out. A row whose lease could end before the broker's confirm (its commit
 * was slow) is left to the sweep, so the two never publish the same row at once.
 */
/** Longer than the confirm deadline, as the configuration requires, but not twice as long. */
const LEASE_SECONDS = 12;
const CONFIRM_TIMEOUT_MS = 10_000;

let rig: RelayRig;

beforeAll(async () => {
  rig = await startRelayRig('owner-publish-lease-test', { leaseSeconds: LEASE_SECONDS, confirmTimeoutMs: CONFIRM_TIMEOUT_MS });
}, 30_000);

afterAll(async () => {
  await rig?.stop();
});

/** A queued message with its outbox row, as the ledger commits it, written `ageMs` ago. */
async function committed(ageMs: number): Promise<QueuedEntry> {
  const messageId = `wamid.owner.${randomBytes(6).toString('hex')}`;
  const payload: QueueMessage = {
    v: 1, source: 'whatsapp', messageId, from: '15550500002', senderKey: '15550500002', business: '100',
    contactName: null, type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { body: 'menu' },
  };
  const [row] = await rig.db.sql<{ id: string }[]>`
    WITH m AS (
      INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status, payload)
      VALUES ('whatsapp', ${messageId}, ${payload.from}, ${payload.senderKey}, '100', 'queued', ${rig.db.sql.json(payload as never)})
      RETURNING id)
    INSERT INTO outbox (webhook_message_id, lease_until)
    SELECT id, now() + make_interval(secs => ${LEASE_SECONDS}) - make_interval(secs => ${ageMs / 1000}) FROM m
    RETURNING webhook_message_id::text AS id`;
  return { rowId: row!.id, source: 'whatsapp', messageId, payload, traceparent: '', leaseStartedAtMs: Date.now() - ageMs };
}

const outboxHas = async (entry: QueuedEntry) => (await rig.db.sql`SELECT 1 FROM outbox WHERE webhook_message_id = ${entry.rowId}`).length > 0;

it('publishes a row whose lease outlasts the confirm deadline, and hands one whose lease may not to the sweep at once, ahead of the rows after it', async () => {
  const fresh = await committed(0);
  expect(await rig.relay.publishOwned([fresh])).toBe(true);
  expect((await rig.probe.drainWork(rig.topology)).map((message) => message.properties.messageId)).toEqual([`whatsapp:${fresh.messageId}`]);

  // 4 s of a 12 s lease gone, by a slow commit: a confirm could take 10 s more, past the lease.
  const late = await committed(4_000);
  expect(await rig.relay.publishOwned([late])).toBe(false);
  expect(await rig.probe.drainWork(rig.topology)).toEqual([]);
  expect(await outboxHas(late)).toBe(true);
  // Released to the sweep at once, not a lease later: the sender's next message, committed
  // fresh, must not go out ahead of it.
  const [lease] = await rig.db.sql<{ expired: boolean }[]>`SELECT lease_until <= now() AS expired FROM outbox WHERE webhook_message_id = ${late.rowId}`;
  expect(lease!.expired).toBe(true);
  const next = await committed(0);
  expect(await rig.relay.publishOwned([next])).toBe(false);
  expect(await rig.probe.drainWork(rig.topology)).toEqual([]);

  expect(await rig.relay.sweepOnce()).toBe(2);
  expect((await rig.probe.drainWork(rig.topology)).map((message) => message.properties.messageId))
    .toEqual([`whatsapp:${late.messageId}`, `whatsapp:${next.messageId}`]);
  // Nothing waits any more: the owner publishes at once again.
  const after = await committed(0);
  expect(await rig.relay.publishOwned([after])).toBe(true);
  expect((await rig.probe.drainWork(rig.topology)).map((message) => message.properties.messageId)).toEqual([`whatsapp:${after.messageId}`]);
});

it('leaves to the sweep a row whose confirm could end just inside its lease, with no room for the renewal sent at the deadline', async () => {
  // 1.5 s gone: a confirm at the 10 s deadline leaves 0.5 s of the 12 s lease. The renewal sent
  // then has to reach Postgres and commit within it, or a sweep could claim the row and
  // publish it again while the owner's copy is still on its way.
  const tight = await committed(1_500);
  expect(await rig.relay.publishOwned([tight])).toBe(false);
  expect(await rig.probe.drainWork(rig.topology)).toEqual([]);
  expect(await rig.relay.sweepOnce()).toBe(1);
  expect((await rig.probe.drainWork(rig.topology)).map((message) => message.properties.messageId)).toEqual([`whatsapp:${tight.messageId}`]);
  // Half of the 2 s the lease leaves past the deadline is kept for the renewal: 0.2 s gone still publishes.
  const roomy = await committed(200);
  expect(await rig.relay.publishOwned([roomy])).toBe(true);
  expect((await rig.probe.drainWork(rig.topology)).map((message) => message.properties.messageId)).toEqual([`whatsapp:${roomy.messageId}`]);
});
