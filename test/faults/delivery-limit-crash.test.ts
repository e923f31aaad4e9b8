import { startFaultRig, type FaultRig } from '../support/fault-run';
import { waitFor } from '../support/wait';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { listDead } from '../support/dead-letters';
import { replyReference } from '../../src/ledger/fold-receipts';

/**
 * A worker killed during a provider call, at the last delivery the limit allows: the next
 * worker dead-letters the message before any claim (the delivery limit is checked first), so
 * the claim's own step, which marks a reply left mid-call unknown, never runs. The
 * dead-lettering must do it, or the reply stays 'sending', which no operator command shows.
 */
const TEST_TIMEOUT_MS = 120_000;
const CALL_WAIT_MS = 45_000;

let rig: FaultRig;

beforeAll(async () => {
  // RabbitMQ 3.10 redelivers limit + 1 times and the worker dead-letters a delivery early, so
  // with a limit of 2 the first redelivery after the kill is the last one.
  rig = await startFaultRig({ QUEUE_DELIVERY_LIMIT: '2' });
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

/** A message whose reply's provider call the fake holds, once the call has come. */
async function oneHeldCall(): Promise<{ id: string }> {
  const callsBefore = rig.fake.calls().length;
  rig.fake.behave({ kind: 'hold' }, 1);
  const sent = await rig.sendOne();
  expect(sent.status).toBe(200);
  await rig.fake.waitForCalls(callsBefore + 1, CALL_WAIT_MS);
  return sent;
}

async function deadLettered(messageId: string): Promise<void> {
  await waitFor('the message to be dead-lettered', async () => {
    const [row] = await rig.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${messageId}`;
    return row?.status === 'dead';
  }, TEST_TIMEOUT_MS / 2);
}

describe('a worker killed mid-call on the last delivery the limit allows', () => {
  it('leaves the message dead and its reply unknown, never sent again', async () => {
    const sent = await oneHeldCall();
    await rig.replace('worker');
    rig.fake.release();

    await deadLettered(sent.id);
    const [message] = await rig.db.sql<{ last_error: string }[]>`SELECT last_error FROM webhook_messages WHERE message_id = ${sent.id}`;
    expect(message!.last_error).toContain('without finishing');
    const [reply] = await rig.db.sql<{ status: string; last_error: string }[]>`
      SELECT status, last_error FROM outbound_messages WHERE inbound_message_id = ${sent.id}`;
    expect(reply).toEqual({ status: 'unknown', last_error: 'an earlier attempt stopped during the provider call' });
    // The one held call is all the provider got.
    expect(rig.fake.calls()).toHaveLength(1);
  }, TEST_TIMEOUT_MS);

  it('settles the reply sent, not unknown, when a receipt naming the killed call\'s attempt came before the dead-lettering', async () => {
    const sent = await oneHeldCall();
    // The provider took the message and said so, the worker dying before it heard.
    const [reply] = await rig.db.sql<{ id: string; attempt: string; recipient: string }[]>`
      SELECT id::text, sending_attempt::text AS attempt, recipient FROM outbound_messages WHERE inbound_message_id = ${sent.id} AND status = 'sending'`;
    const wamid = `wamid.taken${reply!.id}x${Date.now()}`;
    await rig.db.sql`INSERT INTO message_statuses (webhook_source, message_id, status, recipient, payload)
                     VALUES ('whatsapp', ${wamid}, 'sent', ${reply!.recipient}, ${rig.db.sql.json({ biz_opaque_callback_data: replyReference(reply!.id, reply!.attempt) })})`;
    await rig.replace('worker');
    rig.fake.release();
    await deadLettered(sent.id);
    // Marked unknown, then settled by the receipt in statements of their own.
    await waitFor('the reply to be settled sent', async () => {
      const [row] = await rig.db.sql<{ status: string }[]>`SELECT status FROM outbound_messages WHERE id = ${reply!.id}`;
      return row?.status === 'sent';
    }, TEST_TIMEOUT_MS / 4);
    expect(await rig.db.sql`SELECT status, provider_message_id, delivery_status FROM outbound_messages WHERE id = ${reply!.id}`)
      .toEqual([{ status: 'sent', provider_message_id: wamid, delivery_status: 'sent' }]);
  }, TEST_TIMEOUT_MS);

  it('acks, without a dead letter, a copy of a finished message whose ack was lost at the last delivery the limit allows', async () => {
    const held = await rig.replace('worker', { WAGATE_FAILPOINT: 'worker.before-ack' });
    const sent = await rig.sendOne();
    expect(sent.status).toBe(200);
    await waitFor('the worker to hold before its ack', () => held.logs.some((entry) => entry.failpoint === 'worker.before-ack'), CALL_WAIT_MS);
    const worker = await rig.replace('worker');
    const told = await waitFor('the copy to be judged', () =>
      worker.logs.find((entry) => entry.messageId === sent.id && /dead-lettered/.test(String(entry.msg))), TEST_TIMEOUT_MS / 2);
    expect(told.msg).toBe('not dead-lettered: the message was finished already (a copy whose ack was lost)');
    const [message] = await rig.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${sent.id}`;
    expect(message!.status).toBe('processed');
    expect(await rig.db.sql`SELECT 1 FROM orders WHERE message_id = ${sent.id}`).toHaveLength(1);
    const letters = await listDead(topologyFromConfig(loadConfig(rig.env)));
    expect(letters.map((letter) => letter.id)).not.toContain(`whatsapp:${sent.id}`);
  }, TEST_TIMEOUT_MS);

  it('acks, without a second letter, a copy of a message recorded dead whose ack was lost', async () => {
    const held = await rig.replace('worker', { WAGATE_FAILPOINT: 'worker.after-dead-record' });
    // Refused for good: dead-lettered at once.
    rig.fake.behave({ kind: 'status', status: 400, metaCode: 131026 }, 1);
    const sent = await rig.sendOne();
    expect(sent.status).toBe(200);
    await waitFor('the worker to hold after recording the message dead', () =>
      held.logs.some((entry) => entry.failpoint === 'worker.after-dead-record'), CALL_WAIT_MS);
    const worker = await rig.replace('worker');
    const told = await waitFor('the copy to be judged', () =>
      worker.logs.find((entry) => entry.messageId === sent.id && /dead-lettered/.test(String(entry.msg))), TEST_TIMEOUT_MS / 2);
    expect(told.msg).toBe('not dead-lettered again: its letter is in the dead-letter queue already (a copy whose ack was lost)');
    const letters = await listDead(topologyFromConfig(loadConfig(rig.env)));
    expect(letters.filter((letter) => letter.id === `whatsapp:${sent.id}`)).toHaveLength(1);
  }, TEST_TIMEOUT_MS);
});

describe('a copy of an earlier try at the last delivery the limit allows', () => {
  it('is acked without a letter while the message\'s later try waits in a retry tier, which then finishes it', async () => {
    const held = await rig.replace('worker', { WAGATE_FAILPOINT: 'worker.before-retry-ack' });
    rig.fake.behave({ kind: 'status', status: 503 }, 1);
    const sent = await rig.sendOne();
    expect(sent.status).toBe(200);
    await waitFor('the worker between its confirmed hand-over to a tier and its ack', () =>
      held.logs.some((entry) => entry.failpoint === 'worker.before-retry-ack'), CALL_WAIT_MS);
    // Its ack lost, the original comes back at the limit to the next worker.
    const worker = await rig.replace('worker');
    const told = await waitFor('the copy to be judged', () =>
      worker.logs.find((entry) => entry.messageId === sent.id && /dead-lettered/.test(String(entry.msg))), TEST_TIMEOUT_MS / 2);
    expect(told.msg).toBe('not dead-lettered: a later try of the message is in a retry tier (a copy whose ack was lost)');
    await waitFor('the tier\'s copy to finish the message', async () => {
      const [row] = await rig.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${sent.id}`;
      return row?.status === 'processed';
    }, TEST_TIMEOUT_MS / 2);
    const [reply] = await rig.db.sql<{ status: string }[]>`SELECT status FROM outbound_messages WHERE inbound_message_id = ${sent.id}`;
    expect(reply!.status).toBe('sent');
    const letters = await listDead(topologyFromConfig(loadConfig(rig.env)));
    expect(letters.map((letter) => letter.id)).not.toContain(`whatsapp:${sent.id}`);
  }, TEST_TIMEOUT_MS);
});
