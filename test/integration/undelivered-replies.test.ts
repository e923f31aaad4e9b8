import { eraseCustomer } from '../../src/orders/erase-customer';
import { resendReply, settleReply } from '../../src/orders/reply-operations';
import { listUndeliveredReplies } from '../../src/orders/undelivered-replies';
import { createReplyClient } from '../../src/replies/reply-clients';
import { metaEnvelope } from '../../src/webhooks/samples';
import { runWagate } from '../support/process';
import { ACCESS_TOKEN, PUBLIC_BASE_URL, startPipeline, TWILIO_SID, callsTo as callsToRecipient, type Pipeline } from '../support/pipeline';
import { postMeta, postMetaText, postTwilio, twilioText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline();
  await pipeline.startWorker();
});

afterAll(async () => {
  await pipeline.stop();
});

interface ReplyRow {
  id: string; status: string; delivery_status: string | null; provider_message_id: string | null;
  earlier_provider_message_ids: string[] | null; last_error: string | null;
}

const replyOf = async (inboundId: string) =>
  (await pipeline.db.sql<ReplyRow[]>`
    SELECT id::text, status, delivery_status, provider_message_id, earlier_provider_message_ids, last_error FROM outbound_messages WHERE inbound_message_id = ${inboundId}`)[0];

const statusOf = async (messageId: string) =>
  (await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${messageId}`)[0]?.status;

/** The reply to a message, once the worker has sent it. */
const sentReplyOf = (inboundId: string) =>
  waitFor(`the reply to ${inboundId} to be sent`, async () => {
    const reply = await replyOf(inboundId);
    return reply?.status === 'sent' ? reply : null;
  });

/** Meta's webhook for a receipt of one of our messages. */
const metaReceipt = (providerMessageId: string, recipient: string, status: string, errors?: object[]) =>
  metaEnvelope([{ statuses: [{ id: providerMessageId, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: recipient, ...(errors ? { errors } : {}) }] }]);

const metaClient = (timeoutMs = 300) => createReplyClient({
  graphApiUrl: pipeline.fake.url, graphApiVersion: 'v25.0', accessToken: ACCESS_TOKEN,
  twilioApiUrl: pipeline.fake.url, twilioAccountSid: undefined, twilioAuthToken: undefined, timeoutMs,
});

/** A Meta order from the customer whose reply went out and then failed with the error given. */
async function undeliveredReplyTo(customer: string, error: { code: number; title: string }) {
  const id = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id, from: customer, text: '1 coke' });
  const first = await sentReplyOf(id);
  expect((await postMeta(pipeline.ingest.baseUrl, metaReceipt(first.provider_message_id!, customer, 'failed', [error]))).status).toBe(200);
  await waitFor('the failed receipt folded into the reply', async () => (await replyOf(id))?.delivery_status === 'failed');
  return { id, first };
}

describe('replies the provider accepted and could not deliver', () => {
  it('lists a reply whose receipt said failed, and resends it on purpose: a resend that sends nothing leaves it as it was', async () => {
    const customer = '15550300001';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });

    const listed = (await listUndeliveredReplies(pipeline.db.sql, 24)).find((row) => row.id === first.id);
    expect(listed).toMatchObject({ source: 'whatsapp', inbound_message_id: id, error_code: '131026', error_title: 'Message undeliverable' });
    expect(listed!.failed_at).toBeInstanceOf(Date);
    // The customer wrote just now: a free-form reply may reach them for about a day.
    expect(listed).toMatchObject({ window: 'open', resendable: true });
    expect(listed!.window_open_until!.getTime()).toBeGreaterThan(Date.now() + 23 * 3_600_000);

    // Refused at once (503): nothing went out, so the reply is sent and undelivered as before.
    // The provider's words quote the number: the operator's terminal gets them masked.
    pipeline.fake.behave({ kind: 'status', status: 503, message: 'Message to +1 (555) 030-0001 could not be sent now' }, 1);
    const refused = await resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics).then(() => null, (error: Error) => error);
    expect(refused?.message).toMatch(/resend failed, nothing was sent: .*; the reply is sent and undelivered as before and can be resent later/);
    expect(refused?.message).toContain('Message to <number> could not be sent now');
    expect(refused?.message).not.toContain('030-0001');
    expect(await replyOf(id)).toMatchObject({ status: 'sent', delivery_status: 'failed', provider_message_id: first.provider_message_id, earlier_provider_message_ids: null });

    expect(await resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics)).toBe('sent');
    const calls = callsToRecipient(pipeline, customer);
    expect(calls).toHaveLength(3);
    // The resent message is a new one at the provider: its receipts, not the failed one's, say how it fares.
    const resent = await replyOf(id);
    expect(resent).toMatchObject({
      status: 'sent', delivery_status: null, provider_message_id: calls[2]!.providerMessageId,
      earlier_provider_message_ids: [first.provider_message_id], last_error: null,
    });
    expect(resent!.provider_message_id).not.toBe(first.provider_message_id);
    expect((await listUndeliveredReplies(pipeline.db.sql, 24)).map((row) => row.id)).not.toContain(first.id);

    expect((await postMeta(pipeline.ingest.baseUrl, metaReceipt(resent!.provider_message_id!, customer, 'delivered'))).status).toBe(200);
    await waitFor('the new message\'s receipt folded in', async () => (await replyOf(id))?.delivery_status === 'delivered');
    // Delivered now: resending it would send the customer a second confirmation.
    await expect(resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics))
      .rejects.toThrow(`reply ${first.id} was sent and its furthest receipt says delivered, not failed; only unknown replies and undelivered ones (wagate replies undelivered) can be resent`);
    expect(callsToRecipient(pipeline, customer)).toHaveLength(3);
  });

  it('makes an undelivered reply unknown when its resend gets no answer, since the resend may have gone out', async () => {
    const customer = '15550300002';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131000, title: 'Something went wrong' });
    pipeline.fake.behave({ kind: 'hang' }, 1);
    expect(await resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics)).toBe('unknown');
    // The failed message no longer describes the reply: the resend's fate is what is unknown.
    expect(await replyOf(id)).toMatchObject({
      status: 'unknown', provider_message_id: null, delivery_status: null, earlier_provider_message_ids: [first.provider_message_id],
    });
    expect((await listUndeliveredReplies(pipeline.db.sql, 24)).map((row) => row.id)).not.toContain(first.id);
    // The operator finds the resend delivered in the provider's console: it is not undelivered
    // again, so it can never be resent a second time.
    await settleReply(pipeline.db.sql, first.id, 'sent');
    expect((await listUndeliveredReplies(pipeline.db.sql, 24)).map((row) => row.id)).not.toContain(first.id);
    await expect(resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics))
      .rejects.toThrow(`reply ${first.id} was sent and its furthest receipt says nothing yet, not failed`);
    expect(callsToRecipient(pipeline, customer)).toHaveLength(2);
  });

  it('exits 1 from the command when the resend\'s outcome is unknown, saying to check before resending', async () => {
    const customer = '15550300009';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131000, title: 'Something went wrong' });
    // A 502 without a code: the provider may have taken the message.
    pipeline.fake.behave({ kind: 'status', status: 502, bodyless: true }, 1);
    const resend = await runWagate(['replies', 'resend', '--id', first.id], pipeline.env, 30_000);
    expect(resend.code).toBe(1);
    expect(resend.stderr).toContain(`the provider's answer does not say whether reply ${first.id} went out`);
    expect(resend.stderr).toContain(`wagate replies settle --id ${first.id} --as sent|failed`);
    expect(await replyOf(id)).toMatchObject({ status: 'unknown' });
  });

  it('leaves a reply as it was when the provider refuses its resend for good, so that the operator can fix the cause and resend', async () => {
    const customer = '15550300005';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131000, title: 'Something went wrong' });
    // An expired access token: nothing is sent, and it says nothing about the failed message.
    pipeline.fake.behave({ kind: 'status', status: 401, metaCode: 190 }, 1);
    await expect(resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics))
      .rejects.toThrow(/^resend refused, nothing was sent: Graph API 401 code 190.*; the reply is sent and undelivered as before: fix what the provider names and resend it, or reach the customer another way$/);
    expect(await replyOf(id)).toMatchObject({
      status: 'sent', delivery_status: 'failed', provider_message_id: first.provider_message_id, earlier_provider_message_ids: null,
    });
    expect((await listUndeliveredReplies(pipeline.db.sql, 24)).map((row) => row.id)).toContain(first.id);

    // The resend's own answer lost: unknown. Refused for good next time, it stays unknown, to be settled.
    pipeline.fake.behave({ kind: 'hang' }, 1);
    expect(await resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics)).toBe('unknown');
    pipeline.fake.behave({ kind: 'status', status: 401, metaCode: 190 }, 1);
    await expect(resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics))
      .rejects.toThrow(`the reply is unknown as before: fix what the provider names and resend it, or settle it: wagate replies settle --id ${first.id} --as sent|failed`);
    expect(await replyOf(id)).toMatchObject({ status: 'unknown', provider_message_id: null, earlier_provider_message_ids: [first.provider_message_id] });
    expect(await resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics)).toBe('sent');
    expect(callsToRecipient(pipeline, customer)).toHaveLength(5);
  });

  it('says the customer-service window has closed when the customer last wrote more than a day ago', async () => {
    const customer = '15550300004';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });
    // As if the customer had written 30 hours ago, and not since.
    await pipeline.db.sql`
      UPDATE webhook_messages SET created_at = now() - interval '30 hours', message_timestamp = now() - interval '30 hours'
      WHERE webhook_source = 'whatsapp' AND sender_key = ${customer}`;
    const listing = await runWagate(['replies', 'undelivered'], pipeline.env, 30_000);
    const line = listing.stdout.split('\n').find((row) => row.startsWith(`${first.id}\t`));
    expect(line?.split('\t')).toEqual([first.id, 'whatsapp', id, '131026 Message undeliverable', expect.any(String), 'closed', 'possible']);

    // Retention deleted the message: the order still says who the customer is.
    await pipeline.db.sql`DELETE FROM webhook_messages WHERE webhook_source = 'whatsapp' AND message_id = ${id}`;
    const listed = async () => (await listUndeliveredReplies(pipeline.db.sql, 24)).find((row) => row.id === first.id);
    expect(await listed()).toMatchObject({ window: 'closed', window_open_until: null, resendable: true });
    // Erased, nobody is: the window is not known, and the text to resend is gone.
    await eraseCustomer(pipeline.db.sql, customer, null);
    expect(await listed()).toMatchObject({ window: 'unknown', window_open_until: null, resendable: false });
  });

  it('lists Twilio\'s undelivered callbacks with their ErrorCode, and resends through the command', async () => {
    const customer = 'whatsapp:+15550300003';
    const params = twilioText('1 coke', customer);
    const sid = params.find(([name]) => name === 'MessageSid')![1];
    expect((await postTwilio(pipeline.ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    const first = await sentReplyOf(sid);
    const callback: [string, string][] = [
      ['MessageSid', first.provider_message_id!], ['MessageStatus', 'undelivered'], ['ErrorCode', '63024'],
      ['To', customer], ['From', 'whatsapp:+14155238886'], ['AccountSid', TWILIO_SID],
    ];
    expect((await postTwilio(pipeline.ingest.baseUrl, callback, { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    await waitFor('the undelivered callback folded into the reply', async () => (await replyOf(sid))?.delivery_status === 'undelivered');

    const listing = await runWagate(['replies', 'undelivered'], pipeline.env, 30_000);
    expect(listing.code).toBe(0);
    const line = listing.stdout.split('\n').find((row) => row.startsWith(`${first.id}\t`));
    expect(line?.split('\t')).toEqual([first.id, 'twilio', sid, '63024', expect.stringMatching(/^\d{4}-/), expect.stringMatching(/^open until \d{4}-/), 'possible']);

    const resend = await runWagate(['replies', 'resend', '--id', first.id], pipeline.env, 30_000);
    expect([resend.code, resend.stdout]).toEqual([0, `reply ${first.id}: sent\n`]);
    const sends = pipeline.fake.calls().filter((call) => call.provider === 'twilio' && (call.body as Record<string, string>).To === customer);
    expect(sends).toHaveLength(2);
    expect(await replyOf(sid)).toMatchObject({ status: 'sent', delivery_status: null, provider_message_id: sends[1]!.providerMessageId });
  });
});

describe('receipts of the message a resend replaced', () => {
  it('keep neither the number nor the payload once the customer is erased, and move nothing', async () => {
    const customer = '15550300009';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });
    expect(await resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics)).toBe('sent');
    await eraseCustomer(pipeline.db.sql, customer, null);

    // Meta's receipts may come out of order and days late: a 'delivered' for the replaced message.
    expect((await postMeta(pipeline.ingest.baseUrl, metaReceipt(first.provider_message_id!, customer, 'delivered'))).status).toBe(200);
    expect(await pipeline.db.sql`
      SELECT recipient, payload FROM message_statuses WHERE message_id = ${first.provider_message_id} AND status = 'delivered'`).toEqual([
      { recipient: null, payload: null },
    ]);
    // The reply follows the message that replaced it, whose receipts have not come yet.
    expect(await replyOf(id)).toMatchObject({ status: 'sent', delivery_status: null, earlier_provider_message_ids: [first.provider_message_id] });
  });
});

/** The pipeline's database, where every try of a statement whose text matches fails with a deadlock. */
const failing = (statement: RegExp) => new Proxy(pipeline.db.sql, {
  apply(target, self, args: unknown[]) {
    const text = Array.isArray(args[0]) ? args[0].join('') : '';
    if (statement.test(text)) return Promise.reject(Object.assign(new Error('deadlock detected'), { code: '40P01' }));
    return Reflect.apply(target, self, args);
  },
});

describe('a resend refused while the database fails or the customer is erased', () => {
  it('makes the reply unknown, never failed, when putting it back cannot be written: nothing was sent', async () => {
    const customer = '15550300010';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });
    // The statement that records the refusal and puts the reply back keeps failing, a deadlock
    // each time, and is given up after its short retries; every other statement goes through. (A
    // connection cut each time is tried for 30 s, as long as a running worker takes to mark a
    // reply left 'sending' unknown itself, and the two raced.)
    const cutPutBack = failing(/NULLIF\(earlier_provider_message_ids/);
    pipeline.fake.behave({ kind: 'status', status: 401, metaCode: 190 }, 1);
    await expect(resendReply(cutPutBack, first.id, metaClient(), pipeline.workers[0]!.metrics))
      .rejects.toThrow(/resend refused, nothing was sent: .*; it could not be put back as it was: deadlock detected; the reply is unknown now: resend it, or settle it/);
    expect(await replyOf(id)).toMatchObject({ status: 'unknown', provider_message_id: null, earlier_provider_message_ids: [first.provider_message_id] });
    expect(callsToRecipient(pipeline, customer)).toHaveLength(2);

    // Unknown, so in front of an operator, who may resend it: it goes out once.
    expect(await resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics)).toBe('sent');
    expect(callsToRecipient(pipeline, customer)).toHaveLength(3);
  });

  it('makes the reply unknown when a refusal that may be retried cannot put it back, never leaving it sending', async () => {
    const customer = '15550300012';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });
    pipeline.fake.behave({ kind: 'status', status: 503, metaCode: 2 }, 1);
    await expect(resendReply(failing(/NULLIF\(earlier_provider_message_ids/), first.id, metaClient(), pipeline.workers[0]!.metrics))
      .rejects.toThrow(/resend failed, nothing was sent: .*could not be put back as it was: .*deadlock detected.*; the reply is unknown now: resend it, or settle it/);
    expect(await replyOf(id)).toMatchObject({ status: 'unknown', provider_message_id: null });
    expect(callsToRecipient(pipeline, customer)).toHaveLength(2);
  });

  it('names the provider\'s id and the settle that records it when an accepted resend cannot be recorded', async () => {
    const customer = '15550300013';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });
    const error = await resendReply(failing(/WITH input AS/), first.id, metaClient(), pipeline.workers[0]!.metrics).catch((caught: Error) => caught);
    // The customer has it: one call more than the first send.
    const calls = callsToRecipient(pipeline, customer);
    expect(calls).toHaveLength(2);
    const providerId = (error as Error).message.match(/accepted it as (wamid\.\S+),/)?.[1];
    expect(providerId).toBeDefined();
    expect((error as Error).message).toMatch(new RegExp(`^reply ${first.id} was sent: .*do not resend it; it is unknown now, record it: wagate replies settle --id ${first.id} --as sent --provider-id ${providerId!.replace(/[.+]/g, '\\$&')}$`));
    const reply = await replyOf(id);
    expect(reply).toMatchObject({ status: 'unknown' });
    expect(reply!.last_error).toContain(`--provider-id ${providerId}`);

    // The settle it names records the send, and the resend's receipts reach the reply.
    await settleReply(pipeline.db.sql, first.id, 'sent', providerId!);
    expect(await replyOf(id)).toMatchObject({ status: 'sent', provider_message_id: providerId });
    expect(callsToRecipient(pipeline, customer)).toHaveLength(2);
  });

  it('answers sent when the settle of an accepted resend committed each time with its answer lost', async () => {
    const customer = '15550300014';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });
    // The statement runs and commits; its answer never comes back.
    const answerLost = new Proxy(pipeline.db.sql, {
      apply(target, self, args: unknown[]) {
        const text = Array.isArray(args[0]) ? args[0].join('') : '';
        const result = Reflect.apply(target, self, args) as Promise<unknown>;
        if (!text.includes('WITH input AS')) return result;
        return result.then(() => Promise.reject(Object.assign(new Error('deadlock detected'), { code: '40P01' })));
      },
    });
    expect(await resendReply(answerLost, first.id, metaClient(), pipeline.workers[0]!.metrics)).toBe('sent');
    const reply = await replyOf(id);
    expect(reply).toMatchObject({ status: 'sent', earlier_provider_message_ids: [first.provider_message_id] });
    expect(reply!.provider_message_id).toMatch(/^wamid\./);
    expect(reply!.provider_message_id).not.toBe(first.provider_message_id);
    expect(callsToRecipient(pipeline, customer)).toHaveLength(2);
  });

  it('keeps no provider text when the customer is erased during the refused resend\'s call', async () => {
    const customer = '15550300011';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });
    pipeline.fake.behave({ kind: 'hold', answer: { kind: 'status', status: 400, metaCode: 131026, message: `Recipient ${customer} is not a valid WhatsApp user` } }, 1);
    const resend = resendReply(pipeline.db.sql, first.id, metaClient(10_000), pipeline.workers[0]!.metrics).catch((error: Error) => error);
    await waitFor('the resend held at the provider', async () => callsToRecipient(pipeline, customer).length === 2);
    await eraseCustomer(pipeline.db.sql, customer, null);
    pipeline.fake.release();
    expect((await resend as Error).message).toMatch(/resend refused, nothing was sent: .*the reply is sent and undelivered as before/);
    const reply = await replyOf(id);
    expect(reply).toMatchObject({ status: 'sent', delivery_status: 'failed', provider_message_id: first.provider_message_id });
    expect(reply!.last_error).not.toContain(customer);
  });
});

describe('the list of undelivered replies', () => {
  const listedIn = async (hours: number, replyId: string) => (await listUndeliveredReplies(pipeline.db.sql, hours)).find((row) => row.id === replyId);

  it('reads the window of the business number that sent the reply, from the customer\'s own messages only', async () => {
    const customer = '15550300012';
    const { id, first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });
    const [{ business_number: shopNumber }] = await pipeline.db.sql<[{ business_number: string }]>`
      SELECT business_number FROM webhook_messages WHERE webhook_source = 'whatsapp' AND message_id = ${id}`;
    await pipeline.db.sql`
      UPDATE webhook_messages SET created_at = now() - interval '30 hours', message_timestamp = now() - interval '30 hours'
      WHERE webhook_source = 'whatsapp' AND sender_key = ${customer}`;
    const later = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: later, from: customer, text: 'hello' });
    await waitFor('the later message handled', async () => ['processed', 'unmatched'].includes(await statusOf(later) ?? ''));

    // The customer wrote since, but to another of the shop's numbers: that window is the other number's.
    await pipeline.db.sql`UPDATE webhook_messages SET business_number = '109999999999999' WHERE message_id = ${later}`;
    expect(await listedIn(24, first.id)).toMatchObject({ window: 'closed', window_open_until: null });
    // To this number, but refused as a replay, dated two hours ahead: not the customer's message either.
    await pipeline.db.sql`
      UPDATE webhook_messages SET business_number = ${shopNumber}, status = 'replay_rejected', message_timestamp = now() + interval '2 hours'
      WHERE message_id = ${later}`;
    expect(await listedIn(24, first.id)).toMatchObject({ window: 'closed', window_open_until: null });
    // Written in a WhatsApp group the shop is in: a group's message opens no window to the customer alone.
    await pipeline.db.sql`
      UPDATE webhook_messages SET status = 'processed', payload = jsonb_set(payload, '{content,group_id}', '"Y2FwaV9ncm91cDox"')
      WHERE message_id = ${later}`;
    expect(await listedIn(24, first.id)).toMatchObject({ window: 'closed', window_open_until: null });
    await pipeline.db.sql`UPDATE webhook_messages SET payload = payload #- '{content,group_id}' WHERE message_id = ${later}`;
    // Accepted, its window runs from its arrival, however far ahead its timestamp.
    await pipeline.db.sql`UPDATE webhook_messages SET status = 'processed' WHERE message_id = ${later}`;
    const open = await listedIn(24, first.id);
    expect(open).toMatchObject({ window: 'open' });
    expect(open!.window_open_until!.getTime()).toBeLessThanOrEqual(Date.now() + 24 * 3_600_000);
  });

  it('lists a reply by when its failure came, so that an erasure does not bring an old one back', async () => {
    const customer = '15550300013';
    const { first } = await undeliveredReplyTo(customer, { code: 131026, title: 'Message undeliverable' });
    await pipeline.db.sql`
      UPDATE message_statuses SET created_at = now() - interval '10 days' WHERE message_id = ${first.provider_message_id} AND status = 'failed'`;
    await pipeline.db.sql`UPDATE outbound_messages SET updated_at = now() - interval '10 days' WHERE id = ${first.id}`;
    expect(await listedIn(24, first.id)).toBeUndefined();
    expect(await listedIn(11 * 24, first.id)).toMatchObject({ error_code: '131026' });

    await eraseCustomer(pipeline.db.sql, customer, null);
    expect(await listedIn(24, first.id)).toBeUndefined();
    expect(await listedIn(11 * 24, first.id)).toMatchObject({ window: 'unknown', resendable: false });
  });

  it('finds them through their own index, however many replies are kept', async () => {
    // Fifty thousand delivered replies, as a shop keeps for its order retention.
    await pipeline.db.sql`
      INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status, provider_message_id, delivery_status)
      SELECT 'kept:' || g, 'whatsapp', 'kept.' || g, '15550399999', '100000000000001', 'confirmation', 'ok', 'sent', 'wamid.kept.' || g, 'read'
      FROM generate_series(1, 50000) g`;
    await pipeline.db.sql`ANALYZE outbound_messages`;
    const scans = async () => Number((await pipeline.db.sql<[{ idx_scan: string }]>`
      SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'outbound_messages_undelivered_idx'`)[0].idx_scan);
    const before = await scans();
    expect((await listUndeliveredReplies(pipeline.db.sql, 24 * 30)).length).toBeGreaterThan(0);
    // Each backend reports its counts when it goes idle, within about a second.
    await waitFor('the listing\'s index scan counted', async () => (await scans()) > before);
  });
});
