import { randomUUID } from 'node:crypto';
import type { Config } from '../config';
import { ConfigError, describeFetchFailure, UsageError, WagateError } from '../errors';
import { META_WEBHOOK_PATH } from '../webhooks/meta';
import { encodeForm, metaSignature, metaTextEnvelope, twilioSignature, twilioTextForm } from '../webhooks/samples';
import { TWILIO_MESSAGE_SID, TWILIO_WEBHOOK_PATH } from '../webhooks/twilio';
import { TWILIO_SIGNATURE_SETTINGS_HEADER } from '../webhooks/twilio-signing';

export interface SendOptions {
  provider: 'meta' | 'twilio';
  /** Where the gateway listens; defaults to http://127.0.0.1:PORT. */
  url?: string;
  text: string;
  from: string;
  id?: string;
  to?: string;
  /** How long to wait for the gateway's answer; one that accepts and never answers would hold the shell for minutes. */
  timeoutMs?: number;
}

const DEFAULT_SEND_TIMEOUT_MS = 10_000;

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
    const response = await postOrExplain(base + META_WEBHOOK_PATH, options.timeoutMs, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': metaSignature(secret, body) },
      body,
    });
    return { status: response.status, body: await response.text(), messageId };
  }
  // The gateway keeps a form whose MessageSid is not one of Twilio's as malformed (twilio.ts).
  if (options.id !== undefined && !TWILIO_MESSAGE_SID.test(options.id)) {
    throw new UsageError(`--id ${options.id} is not a Twilio message id: give SM and 32 hex digits (e.g. SM${'0'.repeat(31)}1), or leave --id out for a random one`);
  }
  const signing = twilioSampleSigning(config);
  const messageId = options.id ?? `SM${randomUUID().replace(/-/g, '')}`;
  const params = twilioTextForm({
    sid: messageId,
    from: withWhatsAppPrefix(options.from),
    to: withWhatsAppPrefix(options.to ?? '+14155238886'),
    text: options.text,
  });
  // The signature covers the public URL Twilio would have called, which the gateway rebuilds.
  const signedUrl = (config.PUBLIC_BASE_URL ?? base).replace(/\/+$/, '') + TWILIO_WEBHOOK_PATH;
  const response = await postOrExplain(base + TWILIO_WEBHOOK_PATH, options.timeoutMs, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      'X-Twilio-Signature': twilioSignature(signing.secret, signedUrl, params, signing.algorithm),
      ...signing.headers,
    },
    body: encodeForm(params),
  });
  return { status: response.status, body: await response.text(), messageId };
}

/**
 * The auth token, as Twilio signs by default; in an ingest pod that has only a Webhook Rule's
 * shared key, that key, as the Rule signs (HMAC-SHA256, named in the settings header).
 */
function twilioSampleSigning(config: Config): { secret: string; algorithm: 'sha1' | 'sha256'; headers: Record<string, string> } {
  const token = config.TWILIO_AUTH_TOKEN[0];
  if (token) return { secret: token, algorithm: 'sha1', headers: {} };
  const sharedKey = config.TWILIO_WEBHOOK_SHARED_KEY[0];
  if (sharedKey) return { secret: sharedKey, algorithm: 'sha256', headers: { [TWILIO_SIGNATURE_SETTINGS_HEADER]: 'key=wagate-send,algorithm=HMAC_SHA256' } };
  if (config.TWILIO_SKIP_VALIDATION) return { secret: '', algorithm: 'sha1', headers: {} };
  throw new ConfigError('neither TWILIO_AUTH_TOKEN nor TWILIO_WEBHOOK_SHARED_KEY is set: one is needed to sign the sample');
}

/** Twilio addresses WhatsApp numbers as "whatsapp:+1555…". */
function withWhatsAppPrefix(address: string): string {
  return address.startsWith('whatsapp:') ? address : `whatsapp:${address}`;
}

async function postOrExplain(url: string, timeoutMs = DEFAULT_SEND_TIMEOUT_MS, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, method: 'POST', signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') {
      throw new WagateError('GATEWAY_UNREACHABLE', `the gateway at ${url} took the connection but did not answer within ${timeoutMs / 1000} s; check its logs and /readyz, or pass a longer --timeout`, { cause: error });
    }
    throw new WagateError(
      'GATEWAY_UNREACHABLE',
      `could not reach the gateway at ${url} (${describeFetchFailure(error)}); start it (scripts/dev.sh), wait for it (wagate wait-ready), or pass --url`,
      { cause: error },
    );
  }
}

/** What a non-2xx answer to a sample means and what to change, so a refused send is not a dead end. */
export function explainGatewayAnswer(status: number, provider: SendOptions['provider']): string {
  if (status === 401) {
    return provider === 'meta'
      ? 'the gateway refused the signature: sign with a secret it knows (the first WHATSAPP_APP_SECRET here must be in the gateway\'s WHATSAPP_APP_SECRET list)'
      : 'the gateway refused the signature: sign with a secret it knows (the first TWILIO_AUTH_TOKEN here, or without one the first TWILIO_WEBHOOK_SHARED_KEY, must be in the gateway\'s list) and use the same PUBLIC_BASE_URL as the gateway';
  }
  if (status === 503) return 'the gateway is unavailable (its database cannot be reached, or it is overloaded); check its /readyz and logs, then send again';
  if (status === 413) return 'the body is larger than the gateway\'s MAX_BODY_BYTES';
  return `the gateway answered ${status}; see its logs`;
}
