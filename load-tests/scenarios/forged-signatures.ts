import { metaMessageId, senderPhone, twilioMessageSid } from '../lib/ids.ts';
import { encodeForm } from '../lib/encoding.ts';
import { META_WEBHOOK_PATH, metaTextBody, ORDER_TEXT, TWILIO_BUSINESS_NUMBER, TWILIO_WEBHOOK_PATH, twilioTextParams, type PlannedRequest } from '../lib/payloads.ts';
import { baseThresholds, constantLoad, nowSeconds, type RunContext, type ScenarioModule } from '../lib/scenario.ts';
import { metaSignature, twilioSignature } from '../lib/sign.ts';

/** Each forgery is a genuine-looking message that one detail makes unsigned; all must get 401 and leave no row. */
type Forgery = (n: number, run: RunContext) => Promise<PlannedRequest>;

const WRONG_SECRET = 'not-the-gateway-secret';

function forgedMeta(kind: string, body: string, signature: string | null, id: string): PlannedRequest {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (signature !== null) headers['X-Hub-Signature-256'] = signature;
  return { path: META_WEBHOOK_PATH, headers, body, expectedStatus: 401, tags: { kind: `forged-${kind}` }, messageId: id };
}

function forgedTwilio(kind: string, params: [string, string][], signature: string | null, sid: string): PlannedRequest {
  const headers: Record<string, string> = { 'Content-Type': 'application/x-www-form-urlencoded' };
  if (signature !== null) headers['X-Twilio-Signature'] = signature;
  return { path: TWILIO_WEBHOOK_PATH, headers, body: encodeForm(params), expectedStatus: 401, tags: { kind: `forged-${kind}` }, messageId: sid };
}

function metaBody(n: number, run: RunContext) {
  const id = metaMessageId(run.runId, 'forged-signatures', n);
  return { id, body: metaTextBody({ id, from: senderPhone(run.runId, n % run.settings.senders), text: ORDER_TEXT, timestampSeconds: nowSeconds() }) };
}

function twilioForm(n: number, run: RunContext) {
  const sid = twilioMessageSid(run.runId, n);
  const params = twilioTextParams({ sid, from: `whatsapp:+${senderPhone(run.runId, n % run.settings.senders)}`, text: ORDER_TEXT });
  return { sid, params, url: run.settings.publicBaseUrl + TWILIO_WEBHOOK_PATH };
}

const FORGERIES: Forgery[] = [
  async (n, run) => {
    const { id, body } = metaBody(n, run);
    return forgedMeta('meta-wrong-secret', body, await metaSignature(WRONG_SECRET, body), id);
  },
  async (n, run) => {
    const { id, body } = metaBody(n, run);
    const signature = await metaSignature(run.settings.metaSecret, body);
    return forgedMeta('meta-tampered-body', body.replace('2x margherita', '9x margherita'), signature, id);
  },
  async (n, run) => {
    const { id, body } = metaBody(n, run);
    return forgedMeta('meta-no-signature', body, null, id);
  },
  async (n, run) => {
    const { id, body } = metaBody(n, run);
    return forgedMeta('meta-wrong-prefix', body, (await metaSignature(run.settings.metaSecret, body)).replace('sha256=', 'sha1='), id);
  },
  async (n, run) => {
    const { sid, params, url } = twilioForm(n, run);
    return forgedTwilio('twilio-wrong-token', params, await twilioSignature(WRONG_SECRET, url, params), sid);
  },
  async (n, run) => {
    const { sid, params } = twilioForm(n, run);
    return forgedTwilio('twilio-other-url', params, await twilioSignature(run.settings.twilioToken, 'https://attacker.example.com' + TWILIO_WEBHOOK_PATH, params), sid);
  },
  async (n, run) => {
    const { sid, params, url } = twilioForm(n, run);
    const signature = await twilioSignature(run.settings.twilioToken, url, params);
    return forgedTwilio('twilio-tampered-param', params.map(([k, v]) => [k, k === 'Body' ? '9x margherita' : v]), signature, sid);
  },
  async (n, run) => {
    const { sid, params } = twilioForm(n, run);
    return forgedTwilio('twilio-no-signature', params, null, sid);
  },
];

/**
 * Genuinely signed requests beside the forgeries, with the same secrets and URL, that record no
 * message: a Meta envelope whose entry holds no change (answered 200, counted ignored) and a Twilio receipt
 * for a reply the gateway never sent. Half the forgeries sign with the real secret and change
 * one detail; with a wrong secret or PUBLIC_BASE_URL they would be refused for the wrong reason
 * and the run pass. These controls are refused then too, which fails checks and http_req_failed.
 */
const CONTROLS: Forgery[] = [
  async (n, run) => {
    // One entry of no changes: an envelope of no entries at all is malformed, and would be kept.
    const body = JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: '0', changes: [] }] });
    const headers = { 'Content-Type': 'application/json', 'X-Hub-Signature-256': await metaSignature(run.settings.metaSecret, body) };
    return { path: META_WEBHOOK_PATH, headers, body, expectedStatus: 200, tags: { kind: 'control-meta' }, messageId: `control.${run.runId}.${n}` };
  },
  async (n, run) => {
    const sid = twilioMessageSid(run.runId, n);
    const params: [string, string][] = [['MessageSid', sid], ['MessageStatus', 'delivered'], ['SmsSid', sid], ['SmsStatus', 'delivered'],
      ['To', `whatsapp:+${senderPhone(run.runId, n % run.settings.senders)}`], ['From', TWILIO_BUSINESS_NUMBER], ['ApiVersion', '2010-04-01']];
    const signature = await twilioSignature(run.settings.twilioToken, run.settings.publicBaseUrl + TWILIO_WEBHOOK_PATH, params);
    const headers = { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': signature };
    return { path: TWILIO_WEBHOOK_PATH, headers, body: encodeForm(params), expectedStatus: 200, tags: { kind: 'control-twilio' }, messageId: sid };
  },
];

const ROUND = [...FORGERIES, ...CONTROLS];

/** Forged signatures of every kind in turn, all to be answered 401 and recorded nowhere, and a control of each provider per round. */
export const forgedSignatures: ScenarioModule = {
  name: 'forged-signatures',
  defaults: { rate: 200, duration: '1m', signs: ['meta', 'twilio'] },
  define: (settings) => ({
    name: 'forged-signatures',
    description: `${FORGERIES.length} kinds of forged Meta and Twilio signatures in turn, each expecting 401, and ${CONTROLS.length} genuinely signed controls expecting 200`,
    load: constantLoad(settings),
    thresholds: { ...baseThresholds(settings, { slo: false }), forged_accepted: ['count==0'] },
    counters: [{ name: 'forged_accepted', perAnswer: (request, status) => request.tags.kind!.startsWith('forged-') && status >= 200 && status < 300 }],
    plan: async (iteration, run) => [await ROUND[iteration % ROUND.length]!(iteration, run)],
  }),
};
