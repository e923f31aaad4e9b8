import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { META_WEBHOOK_PATH } from '../../src/webhooks/meta';
import { encodeForm, metaSignature, metaTextEnvelope, twilioSignature, twilioTextForm } from '../../src/webhooks/samples';
import { TWILIO_WEBHOOK_PATH, type FormParams } from '../../src/webhooks/twilio';
import { META_SECRET, TWILIO_TOKEN } from './ingest';

export interface Reply {
  status: number;
  body: string;
  headers: Headers;
}

export function uniqueWamid(): string {
  return `wamid.test-${randomUUID()}`;
}

/** POSTs a body to the Meta webhook, signed with secret unless a signature is given. */
export async function postMeta(
  baseUrl: string,
  body: string | object,
  options: { secret?: string; signature?: string | null; headers?: Record<string, string>; path?: string } = {},
): Promise<Reply> {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...options.headers };
  const signature = options.signature === undefined ? metaSignature(options.secret ?? META_SECRET, raw) : options.signature;
  if (signature !== null) headers['X-Hub-Signature-256'] = signature;
  const response = await fetch(baseUrl + (options.path ?? META_WEBHOOK_PATH), { method: 'POST', headers, body: raw });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

export function postMetaText(baseUrl: string, message: { id?: string; from?: string; text?: string; timestamp?: number; userId?: string }): Promise<Reply> {
  return postMeta(
    baseUrl,
    metaTextEnvelope({
      id: message.id ?? uniqueWamid(),
      from: message.from ?? '15550001111',
      text: message.text ?? 'hello',
      timestamp: message.timestamp,
      userId: message.userId,
    }),
  );
}

/**
 * POSTs a Twilio form. publicBaseUrl is the URL Twilio would have called, which the
 * gateway reconstructs from PUBLIC_BASE_URL; path and query are appended to it.
 */
export async function postTwilio(
  baseUrl: string,
  params: FormParams,
  options: {
    publicBaseUrl: string;
    token?: string;
    query?: string;
    signature?: string | null;
    /** Signed as a Webhook Rule signs: this shared key and algorithm, named in X-Twilio-Webhooks-Signature-Settings. */
    sharedKey?: { secret: string; algorithm: 'HMAC_SHA1' | 'HMAC_SHA256' };
  },
): Promise<Reply> {
  const pathAndQuery = TWILIO_WEBHOOK_PATH + (options.query ?? '');
  const url = options.publicBaseUrl + pathAndQuery;
  const { sharedKey } = options;
  const signature =
    options.signature !== undefined
      ? options.signature
      : sharedKey
        ? twilioSignature(sharedKey.secret, url, params, sharedKey.algorithm === 'HMAC_SHA256' ? 'sha256' : 'sha1')
        : twilioSignature(options.token ?? TWILIO_TOKEN, url, params);
  const headers: Record<string, string> = { 'Content-Type': 'application/x-www-form-urlencoded' };
  if (signature !== null) headers['X-Twilio-Signature'] = signature;
  if (sharedKey) headers['X-Twilio-Webhooks-Signature-Settings'] = `key=KS${'0'.repeat(32)},algorithm=${sharedKey.algorithm}`;
  const response = await fetch(baseUrl + pathAndQuery, { method: 'POST', headers, body: encodeForm(params) });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

export function twilioText(text: string, from = 'whatsapp:+15550002222', sid = `SM${randomUUID().replace(/-/g, '')}`): FormParams {
  return twilioTextForm({ sid, from, to: 'whatsapp:+14155238886', text });
}

/**
 * A Meta webhook POST straight on a socket that declares a body of `declared` bytes, sends
 * `sent` of them and stalls; `answer` is what the server wrote before it closed the connection.
 */
export async function stalledUpload(baseUrl: string, declared: number, sent: number, headers = ''): Promise<{ socket: net.Socket; answer: Promise<string> }> {
  const { port } = new URL(baseUrl);
  const socket = net.connect(Number(port), '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const answer = new Promise<string>((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks).toString('latin1'))));
  socket.write(`POST ${META_WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n${headers}\r\n`);
  socket.write(Buffer.alloc(sent, 0x20));
  return { socket, answer };
}
