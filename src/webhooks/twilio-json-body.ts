import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Twilio posts some webhooks as JSON (Content-Type application/json) instead of a form. It then
 * signs the URL alone, with the body's SHA-256 in hex added to it as the query parameter
 * `bodySHA256`, and no parameters after it; the body is checked against that hash, as
 * twilio-node's validateRequestWithBody does. A JSON post checked as a form never matched,
 * and Twilio does not retry a 401.
 */
export function signedBodyHash(originalUrl: string): string | undefined {
  const query = originalUrl.indexOf('?');
  if (query < 0) return undefined;
  return new URLSearchParams(originalUrl.slice(query + 1)).get('bodySHA256') ?? undefined;
}

/** The body's SHA-256 against the signed hash, in constant time. */
export function bodyMatchesHash(rawBody: Buffer, hexHash: string): boolean {
  if (!/^[0-9a-f]{64}$/i.test(hexHash)) return false;
  return timingSafeEqual(createHash('sha256').update(rawBody).digest(), Buffer.from(hexHash, 'hex'));
}

/**
 * The JSON body's top-level fields as a form's parameters (MessageSid, From, Body, ...): strings
 * as they are, numbers and booleans spelled out, anything nested as its JSON. Not an object: why.
 */
export function jsonBodyParams(rawBody: Buffer): { params: Record<string, string> } | { refused: string } {
  let body: unknown;
  try {
    body = JSON.parse(rawBody.toString('utf8'));
  } catch (error) {
    return { refused: `a JSON body (bodySHA256) that does not parse: ${(error as Error).message}` };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { refused: 'a JSON body (bodySHA256) that is not an object' };
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) {
    if (value === null || value === undefined) continue;
    params[name] = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return { params };
}
