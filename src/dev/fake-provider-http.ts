import type http from 'node:http';
import { metaErrorBody, twilioErrorBody, type ShapedError } from './fake-provider-shapes';

const MAX_BODY_BYTES = 1024 * 1024;

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  // A held or delayed call may outlive its client.
  if (res.writableEnded || res.destroyed) return;
  // No body at all, as a proxy's bare answer: not even JSON's null.
  if (body === null) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

export function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) req.destroy(new Error(`request body over ${MAX_BODY_BYTES} bytes`));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function flattenHeaders(headers: http.IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  return flat;
}

/** The parsed value, or the raw text when it is not JSON, so that the call is still recorded as sent. */
export function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** Graph's answers: 104 when no token is sent, 190 when it is not the one configured. */
export function checkMetaAuth(expected: string | undefined, req: http.IncomingMessage, url: URL): ShapedError | undefined {
  if (expected === undefined) return undefined;
  // Graph takes the token from the Authorization header or from the access_token parameter.
  const token = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? url.searchParams.get('access_token');
  if (!token) return { status: 400, body: metaErrorBody(104, 'An access token is required to request this resource.') };
  if (token !== expected) return { status: 401, body: metaErrorBody(190, 'Invalid OAuth access token - Cannot parse access token') };
  return undefined;
}

export interface TwilioCredentials {
  twilioAccountSid?: string;
  twilioAuthToken?: string;
}

/** HTTP Basic with AccountSid:AuthToken; the account in the path must be the one authenticated. */
export function checkTwilioAuth(expected: TwilioCredentials, req: http.IncomingMessage, pathSid: string): ShapedError | undefined {
  const { twilioAccountSid: sid, twilioAuthToken: token } = expected;
  if (sid === undefined && token === undefined) return undefined;
  const encoded = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const [user, ...rest] = encoded ? Buffer.from(encoded, 'base64').toString('utf8').split(':') : [];
  const password = rest.join(':');
  if (!encoded || (sid !== undefined && user !== sid) || (token !== undefined && password !== token)) {
    return { status: 401, body: twilioErrorBody(401, 20003), headers: { 'WWW-Authenticate': 'Basic realm="Twilio API"' } };
  }
  if (sid !== undefined && pathSid !== sid) {
    return { status: 404, body: twilioErrorBody(404, 20404, `The requested resource /2010-04-01/Accounts/${pathSid}/Messages.json was not found`) };
  }
  return undefined;
}
