import { encodeForm } from './encoding.ts';
import { metaSignature, twilioSignature, type FormParams } from './sign.ts';

/** The gateway's webhook paths; providers are pointed at exactly these. */
export const META_WEBHOOK_PATH = '/api/v1/whatsapp-hardened/webhook';
export const TWILIO_WEBHOOK_PATH = '/api/v1/whatsapp-hardened/twilio/webhook';
/** The business number of the gateway's Meta samples; its fake Graph API knows this one. */
export const META_PHONE_NUMBER_ID = '106540352242922';
export const TWILIO_BUSINESS_NUMBER = 'whatsapp:+14155238886';
/** What every load message asks for: a real order, so a worker does the whole pipeline. */
export const ORDER_TEXT = '2x margherita, one coke';

/** One HTTP request an iteration sends, with what it must be answered. */
export interface PlannedRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
  expectedStatus: number;
  /** Metric tags: kind (meta, twilio, forged-…), plus slo=ack when the SLO threshold covers it. */
  tags: Record<string, string>;
  /** The provider's message id, for the checks after a run. */
  messageId: string;
}

/**
 * The tags a webhook request is sent with: its own, and webhook:yes, which the 300 ms target
 * selects. The backlog's stats polls are not webhooks: an admin query over the whole backlog
 * may take seconds, and k6 has no filter for "without a tag" to leave them out otherwise.
 */
export function webhookTags(request: PlannedRequest): Record<string, string> {
  return { ...request.tags, webhook: 'yes' };
}

/** The check that judges a request's answer, named as k6 lists it: "meta answered 200", "forged-meta-wrong-secret answered 401". */
export function checkName(request: PlannedRequest): string {
  return `${request.tags.kind} answered ${request.expectedStatus}`;
}

export interface MetaMessage {
  id: string;
  from: string;
  text: string;
  /** Epoch seconds; the gateway refuses Meta timestamps outside its replay window. */
  timestampSeconds: number;
}

/** A Meta Cloud API webhook with one text message, as Meta sends it. The string is the exact body that gets signed. */
export function metaTextBody(message: MetaMessage): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550783881', phone_number_id: META_PHONE_NUMBER_ID },
              contacts: [{ profile: { name: 'Load Customer' }, wa_id: message.from }],
              messages: [{ from: message.from, id: message.id, timestamp: String(message.timestampSeconds), type: 'text', text: { body: message.text } }],
            },
          },
        ],
      },
    ],
  });
}

export async function signedMetaRequest(appSecret: string, message: MetaMessage, tags: Record<string, string>): Promise<PlannedRequest> {
  const body = metaTextBody(message);
  return {
    path: META_WEBHOOK_PATH,
    headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': await metaSignature(appSecret, body) },
    body,
    expectedStatus: 200,
    tags,
    messageId: message.id,
  };
}

export interface TwilioMessage {
  sid: string;
  /** "whatsapp:+1555…" */
  from: string;
  text: string;
}

/** The form Twilio posts for an inbound WhatsApp text, in Twilio's order. */
export function twilioTextParams(message: TwilioMessage): FormParams {
  return [
    ['SmsMessageSid', message.sid],
    ['NumMedia', '0'],
    ['ProfileName', 'Load Customer'],
    ['MessageType', 'text'],
    ['SmsSid', message.sid],
    ['WaId', message.from.replace(/^whatsapp:\+?/, '')],
    ['SmsStatus', 'received'],
    ['Body', message.text],
    ['To', TWILIO_BUSINESS_NUMBER],
    ['NumSegments', '1'],
    ['MessageSid', message.sid],
    ['AccountSid', 'AC00000000000000000000000000000000'],
    ['From', message.from],
    ['ApiVersion', '2010-04-01'],
  ];
}

/** publicBaseUrl is the scheme and host Twilio calls; the gateway rebuilds the signed URL from its PUBLIC_BASE_URL. */
export async function signedTwilioRequest(
  authToken: string,
  publicBaseUrl: string,
  message: TwilioMessage,
  tags: Record<string, string>,
): Promise<PlannedRequest> {
  const params = twilioTextParams(message);
  const signature = await twilioSignature(authToken, publicBaseUrl.replace(/\/+$/, '') + TWILIO_WEBHOOK_PATH, params);
  return {
    path: TWILIO_WEBHOOK_PATH,
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': signature },
    body: encodeForm(params),
    expectedStatus: 200,
    tags,
    messageId: message.sid,
  };
}
