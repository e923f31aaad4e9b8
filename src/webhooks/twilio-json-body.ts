import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Twilio posts some webhooks as JSON (Content-Type application/json) instead of a form. It then
 * signs the URL alone, with the body's SHA-256 in hex added to it as the query parameter
 * `bodySHA256`, and no parameters after it; the body is checked against that hash, as
 * twilio-node's validateRequestWithBody does. A JSON post checked as a form never matched,
 * and Twilio does not retry a 401.
 */
export function readSignedBodyHash(originalUrl: string): string | undefined {
  // Only as the URL's last parameter, where Twilio appends it. Anywhere in the query, a form
  // post's signed string (the URL, then each parameter's name and value run together) could
  // read as such a URL when the configured URL has a query and a customer's text holds
  // "&bodySHA256=…&": that message's leaked signature would then sign a forged JSON body.
  return /[?&]bodySHA256=([0-9a-fA-F]{64})$/.exec(originalUrl)?.[1];
}

/** The body's SHA-256 against the signed hash, in constant time. */
export function bodyMatchesHash(rawBody: Buffer, hexHash: string): boolean {
  const signed = Buffer.from(hexHash, 'hex');
  return signed.length === 32 && timingSafeEqual(createHash('sha256').update(rawBody).digest(), signed);
}

/**
 * The JSON body's top-level fields as a form's parameters (MessageSid, From, Body, ...): strings
 * as they are, numbers and booleans spelled out, anything nested as its JSON. Not an object: why.
 */
export function readJsonBodyParams(rawBody: Buffer): { params: Record<string, string> } | { refused: string } {
  let body: unknown;
  try {
    body = JSON.parse(rawBody.toString('utf8'));
  } catch {
    // Not the parser's message: it quotes the text, and last_error outlives the personal data.
    return { refused: 'a JSON body (bodySHA256) that does not parse' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { refused: 'a JSON body (bodySHA256) that is not an object' };
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) {
    if (value === null || value === undefined) continue;
    params[name] = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return { params };
}
