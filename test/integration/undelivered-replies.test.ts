import { resendReply } from '../../src/orders/reply-operations';
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

interface ReplyRow { id: string; status: string; delivery_status: string | null; provider_message_id: string | null; last_error: string | null }

const replyOf = async (inboundId: string) =>
  (await pipeline.db.sql<ReplyRow[]>`
    SELECT id::text, status, delivery_status, provider_message_id, last_error FROM outbound_messages WHERE inbound_message_id = ${inboundId}`)[0];

/** The reply to a message, once the worker has sent it. */
const sentReplyOf = (inboundId: string) =>
  waitFor(`the reply to ${inboundId} to be sent`, async () => {
    const reply = await replyOf(inboundId);
    return reply?.status === 'sent' ? reply : null;
  });

/** Meta's webhook for a receipt of one of our messages. */
const metaReceipt = (providerMessageId: string, recipient: string, status: string, errors?: object[]) =>
  metaEnvelope([{ statuses: [{ id: providerMessageId, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: recipient, ...(errors ? { errors } : {}) }] }]);

const metaClient = () => createReplyClient({
  graphApiUrl: pipeline.fake.url, graphApiVersion: 'v25.0', accessToken: ACCESS_TOKEN,
  twilioApiUrl: pipeline.fake.url, twilioAccountSid: undefined, twilioAuthToken: undefined, timeoutMs: 300,
});

describe('replies the provider accepted and could not deliver', () => {
  it('lists a reply whose receipt said failed, and resends it on purpose: a resend that sends nothing leaves it as it was', async () => {
    const id = uniqueWamid();
    const customer = '15550300001';
    await postMetaText(pipeline.ingest.baseUrl, { id, from: customer, text: '1 coke' });
    const first = await sentReplyOf(id);
    const failure = [{ code: 131026, title: 'Message undeliverable' }];
    expect((await postMeta(pipeline.ingest.baseUrl, metaReceipt(first.provider_message_id!, customer, 'failed', failure))).status).toBe(200);
    await waitFor('the failed receipt folded into the reply', async () => (await replyOf(id))?.delivery_status === 'failed');

    const listed = (await listUndeliveredReplies(pipeline.db.sql, 24)).find((row) => row.id === first.id);
    expect(listed).toMatchObject({ source: 'whatsapp', inbound_message_id: id, error_code: '131026', error_title: 'Message undeliverable' });
    expect(listed!.failed_at).toBeInstanceOf(Date);
    expect(listed!.customer_wrote_at).toBeInstanceOf(Date);

    // Refused at once (503): nothing went out, so the reply is sent and undelivered as before.
    pipeline.fake.behave({ kind: 'status', status: 503 }, 1);
    await expect(resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics))
      .rejects.toThrow(/resend failed, nothing was sent: .*; the reply is sent and undelivered as before and can be resent later/);
    expect(await replyOf(id)).toMatchObject({ status: 'sent', delivery_status: 'failed', provider_message_id: first.provider_message_id });

    expect(await resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics)).toBe('sent');
    const calls = callsToRecipient(pipeline, customer);
    expect(calls).toHaveLength(3);
    // The resent message is a new one at the provider: its receipts, not the failed one's, say how it fares.
    const resent = await replyOf(id);
    expect(resent).toMatchObject({ status: 'sent', delivery_status: null, provider_message_id: calls[2]!.providerMessageId, last_error: null });
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
    const id = uniqueWamid();
    const customer = '15550300002';
    await postMetaText(pipeline.ingest.baseUrl, { id, from: customer, text: '1 coke' });
    const first = await sentReplyOf(id);
    expect((await postMeta(pipeline.ingest.baseUrl, metaReceipt(first.provider_message_id!, customer, 'failed', [{ code: 131000, title: 'Something went wrong' }]))).status).toBe(200);
    await waitFor('the failed receipt folded into the reply', async () => (await replyOf(id))?.delivery_status === 'failed');
    pipeline.fake.behave({ kind: 'hang' }, 1);
    expect(await resendReply(pipeline.db.sql, first.id, metaClient(), pipeline.workers[0]!.metrics)).toBe('unknown');
    expect(await replyOf(id)).toMatchObject({ status: 'unknown' });
    expect((await listUndeliveredReplies(pipeline.db.sql, 24)).map((row) => row.id)).not.toContain(first.id);
    expect(callsToRecipient(pipeline, customer)).toHaveLength(2);
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
    expect(line?.split('\t').slice(0, 4)).toEqual([first.id, 'twilio', sid, '63024']);

    const resend = await runWagate(['replies', 'resend', '--id', first.id], pipeline.env, 30_000);
    expect([resend.code, resend.stdout]).toEqual([0, `reply ${first.id}: sent\n`]);
    const sends = pipeline.fake.calls().filter((call) => call.provider === 'twilio' && (call.body as Record<string, string>).To === customer);
    expect(sends).toHaveLength(2);
    expect(await replyOf(sid)).toMatchObject({ status: 'sent', delivery_status: null, provider_message_id: sends[1]!.providerMessageId });
  });
});
