import { randomUUID } from 'node:crypto';
import type { Config } from '../config';
import { ConfigError, describeFetchFailure, WagateError } from '../errors';
import { META_WEBHOOK_PATH } from '../webhooks/meta';
import { encodeForm, metaSignature, metaTextEnvelope, twilioSignature, twilioTextForm } from '../webhooks/samples';
import { TWILIO_WEBHOOK_PATH } from '../webhooks/twilio';

export interface SendOptions {
  provider: 'meta' | 'twilio';
  /** Where the gateway listens; defaults to http://127.0.0.1:PORT. */
  url?: string;
  text: string;
  from: string;
  id?: string;
  to?: string;
}

export interface SendResult {
  status: number;
  body: string;
  messageId: string;
}

/** Posts one correctly signed sample webhook to a running gateway. */
export async function sendSample(config: Config, options: SendOptions): Promise<SendResult> {
  const base = (options.url ?? `http://127.0.0.1:${config.PORT}`).replace(/\/+$/, '');
  if (options.provider === 'meta') {
    const secret = config.WHATSAPP_APP_SECRET[0];
    if (!secret) throw new ConfigError('WHATSAPP_APP_SECRET is not set: it is needed to sign the sample');
    const messageId = options.id ?? `wamid.sample-${randomUUID()}`;
    const body = JSON.stringify(metaTextEnvelope({ id: messageId, from: options.from, text: options.text, phoneNumberId: options.to }));
    const response = await postOrExplain(base + META_WEBHOOK_PATH, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': metaSignature(secret, body) },
      body,
    });
    return { status: response.status, body: await response.text(), messageId };
  }
  const token = config.TWILIO_AUTH_TOKEN[0];
  if (!token && !config.TWILIO_SKIP_VALIDATION) throw new ConfigError('TWILIO_AUTH_TOKEN is not set: it is needed to sign the sample');
  const messageId = options.id ?? `SM${randomUUID().replace(/-/g, '')}`;
  const params = twilioTextForm({
    sid: messageId,
    from: options.from.startsWith('whatsapp:') ? options.from : `whatsapp:${options.from}`,
    to: options.to ?? 'whatsapp:+14155238886',
    text: options.text,
  });
  // The signature covers the public URL Twilio would have called, which the gateway rebuilds.
  const signedUrl = (config.PUBLIC_BASE_URL ?? base).replace(/\/+$/, '') + TWILIO_WEBHOOK_PATH;
  const response = await postOrExplain(base + TWILIO_WEBHOOK_PATH, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      'X-Twilio-Signature': twilioSignature(token ?? '', signedUrl, params),
    },
    body: encodeForm(params),
  });
  return { status: response.status, body: await response.text(), messageId };
}

async function postOrExplain(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, method: 'POST' });
  } catch (error) {
    throw new WagateError(
      'GATEWAY_UNREACHABLE',
      `could not reach the gateway at ${url} (${describeFetchFailure(error)}); start it (scripts/dev.sh), wait for it (wagate wait-ready), or pass --url`,
      { cause: error },
    );
  }
}
