import { signHmac } from './hmac';
import { twilioParamString, type FormParams } from './twilio';

/** Builders for correctly signed sample webhooks, shared by `wagate send`, tests and the bench. */
export interface SampleMessage {
  id: string;
  from: string;
  text: string;
  /** Epoch seconds; defaults to now. */
  timestamp?: number;
  phoneNumberId?: string;
  name?: string;
  userId?: string;
}

export function metaTextEnvelope(message: SampleMessage): Record<string, unknown> {
  return metaEnvelope([{ messages: [metaTextMessage(message)], contacts: [metaContact(message)] }], message.phoneNumberId);
}

export function metaTextMessage(message: SampleMessage): Record<string, unknown> {
  return {
    from: message.from,
    id: message.id,
    timestamp: String(message.timestamp ?? Math.floor(Date.now() / 1000)),
    type: 'text',
    text: { body: message.text },
  };
}

export function metaContact(message: Pick<SampleMessage, 'from' | 'name' | 'userId'>): Record<string, unknown> {
  return { profile: { name: message.name ?? 'Sample Customer' }, wa_id: message.from, ...(message.userId ? { user_id: message.userId } : {}) };
}

/** A full envelope: one change per value, each value given its metadata. */
export function metaEnvelope(values: Record<string, unknown>[], phoneNumberId = '106540352242922'): Record<string, unknown> {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: values.map((value) => ({
          field: 'messages',
          value: {
            messaging_product: 'whatsapp',
            metadata: { display_phone_number: '15550783881', phone_number_id: phoneNumberId },
            ...value,
          },
        })),
      },
    ],
  };
}

export function metaSignature(secret: string, body: Buffer | string): string {
  return `sha256=${signHmac('sha256', 'hex', secret, body)}`;
}

export function twilioTextForm(message: { sid: string; from: string; to: string; text: string; name?: string }): FormParams {
  return [
    ['SmsMessageSid', message.sid],
    ['NumMedia', '0'],
    ['ProfileName', message.name ?? 'Sample Customer'],
    ['MessageType', 'text'],
    ['SmsSid', message.sid],
    ['WaId', message.from.replace(/^whatsapp:\+?/, '')],
    ['SmsStatus', 'received'],
    ['Body', message.text],
    ['To', message.to],
    ['NumSegments', '1'],
    ['ReferralNumMedia', '0'],
    ['MessageSid', message.sid],
    ['AccountSid', 'AC00000000000000000000000000000000'],
    ['From', message.from],
    ['ApiVersion', '2010-04-01'],
  ];
}

/** With the auth token and SHA-1 by default; a Webhook Rule's shared key may sign with SHA-256. */
export function twilioSignature(secret: string, url: string, params: FormParams, algorithm: 'sha1' | 'sha256' = 'sha1'): string {
  return signHmac(algorithm, 'base64', secret, url + twilioParamString(params));
}

export function encodeForm(params: FormParams): string {
  return new URLSearchParams(params).toString();
}
