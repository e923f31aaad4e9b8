import { metaMessageId, senderPhone, twilioMessageSid } from '../lib/ids.ts';
import { encodeForm } from '../lib/encoding.ts';
import { META_WEBHOOK_PATH, metaTextBody, ORDER_TEXT, TWILIO_WEBHOOK_PATH, twilioTextParams, type PlannedRequest } from '../lib/payloads.ts';
import { baseThresholds, constantLoad, nowSeconds, type RunContext, type ScenarioModule } from '../lib/scenario.ts';
import { metaSignature, twilioSignature } from '../lib/sign.ts';

/** Each forgery is a genuine-looking message that one detail makes unsigned; all must get 401 and leave no row. */
type Forgery = (id: number, run: RunContext) => Promise<PlannedRequest>;

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

/** Forged signatures of every kind in turn: all must be answered 401 and recorded nowhere. */
export const forgedSignatures: ScenarioModule = {
  name: 'forged-signatures',
  defaults: { rate: 200, duration: '1m', signs: ['meta', 'twilio'] },
  define: (settings) => ({
    name: 'forged-signatures',
    description: `${FORGERIES.length} kinds of forged Meta and Twilio signatures in turn, each expecting 401`,
    load: constantLoad(settings),
    thresholds: { ...baseThresholds(settings, { slo: false }), forged_accepted: ['count==0'] },
    counters: [{ name: 'forged_accepted', perAnswer: (_request, status) => status >= 200 && status < 300 }],
    plan: async (iteration, run) => [await FORGERIES[iteration % FORGERIES.length]!(iteration, run)],
  }),
};
