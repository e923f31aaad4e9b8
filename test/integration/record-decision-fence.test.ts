import { recordDecision, SHARD_TAKEN, type OwnerFence } from '../../src/orders/record-decision';
import { writeDecisions, type DecisionFence, type DecisionWrite } from '../../src/orders/write-decisions';
import { shardOf } from '../../src/queue/topology';
import { loadReplyCatalogues } from '../../src/orders/replies';
import type { QueueMessage } from '../../src/queue/message';
import { createTestDatabase, holdInTransaction, type TestDatabase } from '../support/database';
import { waitFor } from '../support/wait';
import { uniqueWamid } from '../support/webhooks';

/**
 * A decision, whether written in a transaction (a cancel, an order status) or in the one
 * statement shared by other senders' messages (an order, a menu), finds its shard recorded as
 * the writing worker's, and keeps it so until its commit: a take of the shard waits for it. A
 * cancel begun with the lease left, then held up on a connection or a row lock, used to commit
 * after another worker had taken the shard, beside that worker's handling of the sender's next
 * message.
 */
const PREFIX = 'record-fence';
const FENCE: OwnerFence = { queuePrefix: PREFIX, memberId: 'worker-a', shard: 0 };
const TEXTS = { catalogues: loadReplyCatalogues(), defaultLanguage: 'en' as const };
const POLICY = { cancelWindowHours: 24, stuckAfterMs: 90 * 60_000 };
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

async function claimedMessage(from: string): Promise<QueueMessage> {
  const messageId = uniqueWamid();
  await db.sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status)
               VALUES ('whatsapp', ${messageId}, ${from}, ${from}, '100', 'processing')`;
  return {
    v: 1, source: 'whatsapp', messageId, from, senderKey: from, business: '100', contactName: null, type: 'text',
    timestampSeconds: null, receivedAt: new Date().toISOString(), content: { text: { body: 'status' } },
  };
}

const owner = (name: string, shard = 0) => db.sql`
  INSERT INTO work_shard_owners (queue_prefix, shard, owner) VALUES (${PREFIX}, ${shard}, ${name})
  ON CONFLICT (queue_prefix, shard) DO UPDATE SET owner = EXCLUDED.owner, changed_at = now()`;
const replyOf = async (message: QueueMessage) =>
  db.sql`SELECT kind FROM outbound_messages WHERE inbound_message_id = ${message.messageId}`;

it('writes nothing, and says the shard was taken, once its shard is recorded as another worker\'s', async () => {
  await owner('worker-b');
  const message = await claimedMessage('15550900001');
  expect(await recordDecision(db.sql, message, { kind: 'order_status' }, TEXTS, POLICY, FENCE)).toBe(SHARD_TAKEN);
  expect(await replyOf(message)).toEqual([]);
});

it('holds a take of its shard back until the write has committed', async () => {
  await owner('worker-a');
  const message = await claimedMessage('15550900002');
  // The write waits on the message's row (an erase under way, say), its shard already share-locked.
  const erase = holdInTransaction(db.sql, (tx) => tx`SELECT 1 FROM webhook_messages WHERE message_id = ${message.messageId} FOR UPDATE`);
  await erase.held;
  const writing = recordDecision(db.sql, message, { kind: 'order_status' }, TEXTS, POLICY, FENCE);
  const take = () => db.sql.begin(async (tx) => {
    await tx`SET LOCAL lock_timeout = '200ms'`;
    await tx`UPDATE work_shard_owners SET owner = 'worker-b', changed_at = now() WHERE queue_prefix = ${PREFIX} AND shard = 0`;
  });
  await waitFor('the write to wait on the message\'s row', async () => (await db.sql`
    SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).length > 0);
  // Waits on the fence's lock, and gives up at its lock timeout: the worker's next round would try again.
  await expect(take()).rejects.toMatchObject({ code: '55P03' });
  await erase.release();
  expect(await writing).toMatchObject({ outbound: { kind: 'order_status' } });
  await take();
  expect(await replyOf(message)).toEqual([{ kind: 'order_status' }]);
});

describe('decisions written in one shared statement', () => {
  const WRITE_FENCE: DecisionFence = { queuePrefix: PREFIX, memberId: 'worker-a', shardCount: 2 };
  const menu = (message: QueueMessage): DecisionWrite => ({
    source: 'whatsapp', messageId: message.messageId, senderKey: message.senderKey, recipient: message.from, business: '100',
    contactName: null, language: 'en', rememberLanguage: false, kind: 'menu', body: 'Our menu', order: null,
  });
  /** A sender whose messages go to the given shard of two. */
  const senderOn = (shard: number, from = 15550900100) => {
    for (let n = from; ; n += 1) if (shardOf(String(n), 2) === shard) return String(n);
  };

  it('writes only the messages whose shard is still the writer\'s, and says which were taken', async () => {
    await owner('worker-a', 0);
    await owner('worker-b', 1);
    const [kept, taken] = [await claimedMessage(senderOn(0)), await claimedMessage(senderOn(1))];
    const written = await writeDecisions(db.sql, [menu(kept), menu(taken)], WRITE_FENCE);
    expect(written.map((w) => [w.processing, w.shardTaken, w.reply?.kind ?? null])).toEqual([[true, false, 'menu'], [false, true, null]]);
    expect([await replyOf(kept), await replyOf(taken)]).toEqual([[{ kind: 'menu' }], []]);
  });

  it('holds a take of the shard back until the statement has committed', async () => {
    await owner('worker-a', 0);
    const message = await claimedMessage(senderOn(0, 15550900200));
    const erase = holdInTransaction(db.sql, (tx) => tx`SELECT 1 FROM webhook_messages WHERE message_id = ${message.messageId} FOR UPDATE`);
    await erase.held;
    const writing = writeDecisions(db.sql, [menu(message)], WRITE_FENCE);
    await waitFor('the write to wait on the message\'s row', async () => (await db.sql`
      SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).length > 0);
    const take = () => db.sql.begin(async (tx) => {
      await tx`SET LOCAL lock_timeout = '200ms'`;
      await tx`UPDATE work_shard_owners SET owner = 'worker-b', changed_at = now() WHERE queue_prefix = ${PREFIX} AND shard = 0`;
    });
    await expect(take()).rejects.toMatchObject({ code: '55P03' });
    await erase.release();
    expect((await writing)[0]).toMatchObject({ processing: true, shardTaken: false, reply: { kind: 'menu' } });
    await take();
    expect(await replyOf(message)).toEqual([{ kind: 'menu' }]);
  });
});
