import { SETTLED_BY_RECEIPT } from '../../src/ledger/fold-receipts';
import { TWILIO_WEBHOOK_PATH } from '../../src/webhooks/twilio';
import { twilioSignature } from '../../src/webhooks/samples';
import { TWILIO_TOKEN } from '../support/ingest';
import { listUnknownReplies } from '../../src/orders/reply-operations';
import { metaEnvelope } from '../../src/webhooks/samples';
import { PUBLIC_BASE_URL, startPipeline, type Pipeline } from '../support/pipeline';
import { postMeta, postMetaText, postTwilio, twilioText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

/**
 * A reply whose send answer never came is unknown: resending it could send it twice, and Meta
 * has no console that finds one message. The provider echoes the reply's reference in every
 * receipt of the message (Meta's biz_opaque_callback_data, the query of Twilio's status callback
 * URL), so a receipt settles it as sent, with the message id the provider sent it as.
 */
const REPLY_TIMEOUT_MS = 6000;
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline();
  await pipeline.startWorker({ REPLY_TIMEOUT_MS: String(REPLY_TIMEOUT_MS) });
});

afterAll(async () => {
  await pipeline.stop();
});

interface ReplyRow { id: string; status: string; provider_message_id: string | null; delivery_status: string | null; last_error: string | null }
const replyOf = async (inbound: string) =>
  (await pipeline.db.sql<ReplyRow[]>`
    SELECT id::text, status, provider_message_id, delivery_status, last_error FROM outbound_messages WHERE inbound_message_id = ${inbound}`)[0];

/**
 * An order from `to` whose reply's send the fake never answers: the inbound id, the reference
 * the send carried, and the message id Meta would give it, once the send has reached the fake.
 */
async function unansweredSend(to: string): Promise<{ inbound: string; reference: string; wamid: string }> {
  const inbound = uniqueWamid();
  pipeline.fake.behave({ kind: 'hang' }, 1);
  await postMetaText(pipeline.ingest.baseUrl, { id: inbound, from: to, text: '1 coke' });
  const call = await waitFor('the reply\'s send to reach the provider', () =>
    pipeline.fake.calls().find((c) => (c.body as { to?: string }).to === to));
  const { biz_opaque_callback_data: reference } = call.body as { biz_opaque_callback_data: string };
  return { inbound, reference, wamid: `wamid.HBgL${inbound.replace(/\W/g, '')}` };
}

const receipt = (wamid: string, status: string, reference: string, to: string) => metaEnvelope([{ statuses: [{
  id: wamid, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: to, biz_opaque_callback_data: reference,
}] }]);

it('settles an unknown reply as sent when a receipt that names it arrives', async () => {
  const to = '15550801001';
  const { inbound, reference, wamid } = await unansweredSend(to);
  const unknown = await waitFor('the reply to be unknown', async () => {
    const reply = await replyOf(inbound);
    return reply?.status === 'unknown' ? reply : null;
  }, 3 * REPLY_TIMEOUT_MS);
  expect(reference).toMatch(new RegExp(`^wagate:reply:${unknown.id}:[0-9a-f-]{36}$`));

  expect((await postMeta(pipeline.ingest.baseUrl, receipt(wamid, 'delivered', reference, to))).status).toBe(200);
  // The ingest answers once its receipts are folded in.
  expect(await replyOf(inbound)).toEqual({ ...unknown, status: 'sent', provider_message_id: wamid, delivery_status: 'delivered', last_error: SETTLED_BY_RECEIPT });
  expect((await listUnknownReplies(pipeline.db.sql)).map((reply) => reply.id)).not.toContain(unknown.id);
  // Its later receipts reach it as any sent reply's do.
  await postMeta(pipeline.ingest.baseUrl, receipt(wamid, 'read', reference, to));
  expect((await replyOf(inbound))!.delivery_status).toBe('read');
}, 60_000);

it('settles it from a receipt that came while the send was still under way, once the send times out', async () => {
  const to = '15550801002';
  const { inbound, reference, wamid } = await unansweredSend(to);
  expect((await postMeta(pipeline.ingest.baseUrl, receipt(wamid, 'sent', reference, to))).status).toBe(200);
  // Recorded before the reply was marked unknown: no fold of the ingest's can settle it later.
  expect((await replyOf(inbound))!.status).toBe('sending');
  // Marked unknown once the send times out, then settled by the worker's lookup of its receipts.
  const settled = await waitFor('the reply to be settled as sent', async () => {
    const reply = await replyOf(inbound);
    return reply?.status === 'sent' ? reply : null;
  }, 3 * REPLY_TIMEOUT_MS);
  expect(settled).toMatchObject({ status: 'sent', provider_message_id: wamid, delivery_status: 'sent', last_error: SETTLED_BY_RECEIPT });
}, 60_000);

/** As unansweredSend, for a Twilio message: the inbound sid, and the status callback URL its reply's send named. */
async function unansweredTwilioSend(to: string): Promise<{ inbound: string; callback: string; sid: string }> {
  const params = twilioText('1 coke', to);
  const inbound = params.find(([name]) => name === 'MessageSid')![1];
  pipeline.fake.behave({ kind: 'hang' }, 1);
  expect((await postTwilio(pipeline.ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
  const call = await waitFor('the reply\'s send to reach the provider', () =>
    pipeline.fake.calls().find((c) => c.provider === 'twilio' && (c.body as Record<string, string>).To === to));
  // Where Twilio posts the callbacks, and the URL it signs them over: the StatusCallback as the send gave it.
  const callback = (call.body as Record<string, string>).StatusCallback!;
  expect(callback.startsWith(`${PUBLIC_BASE_URL}${TWILIO_WEBHOOK_PATH}?`)).toBe(true);
  return { inbound, callback, sid: `SM${inbound.slice(2).split('').reverse().join('')}` };
}

/** Twilio's status callback for the message `sid`, posted to `callback` and signed over it. */
async function postCallback(callback: string, sid: string, status: string, to: string): Promise<number> {
  const params: [string, string][] = [['MessageSid', sid], ['MessageStatus', status], ['To', to], ['From', 'whatsapp:+14155238886']];
  const query = callback.slice(callback.indexOf('?'));
  const signature = twilioSignature(TWILIO_TOKEN, callback, params);
  return (await postTwilio(pipeline.ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL, query, signature })).status;
}

it('settles an unknown Twilio reply from a status callback to the URL its send named', async () => {
  const to = 'whatsapp:+15550801003';
  const { inbound, callback, sid } = await unansweredTwilioSend(to);
  await waitFor('the reply to be unknown', async () => (await replyOf(inbound))?.status === 'unknown', 3 * REPLY_TIMEOUT_MS);
  expect(await postCallback(callback, sid, 'delivered', to)).toBe(200);
  expect(await replyOf(inbound)).toMatchObject({ status: 'sent', provider_message_id: sid, delivery_status: 'delivered', last_error: SETTLED_BY_RECEIPT });
}, 60_000);

it('settles a Twilio reply from a callback that came while its send was still under way, once the send times out', async () => {
  const to = 'whatsapp:+15550801004';
  const { inbound, callback, sid } = await unansweredTwilioSend(to);
  expect(await postCallback(callback, sid, 'sent', to)).toBe(200);
  expect((await replyOf(inbound))!.status).toBe('sending');
  const settled = await waitFor('the reply to be settled as sent', async () => {
    const reply = await replyOf(inbound);
    return reply?.status === 'sent' ? reply : null;
  }, 3 * REPLY_TIMEOUT_MS);
  expect(settled).toMatchObject({ provider_message_id: sid, delivery_status: 'sent', last_error: SETTLED_BY_RECEIPT });
}, 60_000);
