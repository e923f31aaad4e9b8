import { createHmac, timingSafeEqual } from 'node:crypto';

export interface HmacCheck {
  algorithm: 'sha1' | 'sha256';
  encoding: 'hex' | 'base64';
  /** Every accepted secret; more than one during a rotation. */
  secrets: readonly string[];
  data: Buffer | string;
  /** The signature as sent, already stripped of any "sha256=" style prefix. */
  signature: string;
}

/**
 * True when any secret produces the signature. Digests are compared as bytes in constant
 * time; a signature of the wrong length is refused before any comparison.
 */
export function verifyHmac(check: HmacCheck): boolean {
  const expectedLength = check.algorithm === 'sha1' ? 20 : 32;
  const given = decodeSignature(check.signature, check.encoding);
  if (given === null || given.length !== expectedLength) return false;
  let matched = false;
  for (const secret of check.secrets) {
    // An empty key is a key everyone knows.
    if (secret.length === 0) continue;
    const digest = createHmac(check.algorithm, secret).update(check.data).digest();
    // No early exit: the time taken does not reveal which secret matched.
    if (timingSafeEqual(digest, given)) matched = true;
  }
  return matched;
}

export function signHmac(algorithm: 'sha1' | 'sha256', encoding: 'hex' | 'base64', secret: string, data: Buffer | string): string {
  return createHmac(algorithm, secret).update(data).digest(encoding);
}

/**
 * Only the canonical spelling decodes: base64 that differs in its unused trailing bits or
 * its padding is refused, as an exact string comparison (Twilio's libraries) would refuse it,
 * and so is hex of an odd length (Node drops the last digit, so 65 digits decoded as 64).
 */
function decodeSignature(signature: string, encoding: 'hex' | 'base64'): Buffer | null {
  const pattern = encoding === 'hex' ? /^(?:[0-9a-fA-F]{2})+$/ : /^[A-Za-z0-9+/]+={0,2}$/;
  if (!pattern.test(signature)) return null;
  const decoded = Buffer.from(signature, encoding);
  if (encoding === 'base64' && decoded.toString('base64') !== signature) return null;
  return decoded;
}
