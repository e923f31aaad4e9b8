import { toBase64, toHex, utf8Bytes } from './encoding.ts';

/**
 * Signing with the global WebCrypto, which k6 (from v0.58, the same release as v1.0.0-rc1)
 * and Node both provide, so this file imports no k6 module and no Node module. Only the part
 * of SubtleCrypto used here is typed, so the file type-checks against @types/k6 and
 * @types/node alike.
 */
type HmacHash = 'SHA-1' | 'SHA-256';
type HmacKey = object;
interface HmacSubtle {
  importKey(format: 'raw', keyData: ArrayBuffer, algorithm: { name: 'HMAC'; hash: HmacHash }, extractable: boolean, usages: string[]): Promise<HmacKey>;
  sign(algorithm: 'HMAC', key: HmacKey, data: ArrayBuffer): Promise<ArrayBuffer>;
}

function subtle(): HmacSubtle {
  const subtleCrypto = (globalThis as { crypto?: { subtle?: HmacSubtle } }).crypto?.subtle;
  if (!subtleCrypto) throw new Error('crypto.subtle is missing: run with k6 v0.58 (v1.0.0-rc1) or later, or Node 20 or later');
  return subtleCrypto;
}

/** Imported keys by hash and secret: importing once per secret keeps signing cheap at thousands of requests a second. */
const keys = new Map<string, Promise<HmacKey>>();

function hmacKey(hash: HmacHash, secret: string): Promise<HmacKey> {
  const cacheKey = `${hash}\u0000${secret}`;
  let key = keys.get(cacheKey);
  if (!key) {
    key = subtle().importKey('raw', exactBuffer(utf8Bytes(secret)), { name: 'HMAC', hash }, false, ['sign']);
    keys.set(cacheKey, key);
  }
  return key;
}

export async function hmac(hash: HmacHash, secret: string, data: string): Promise<Uint8Array> {
  return new Uint8Array(await subtle().sign('HMAC', await hmacKey(hash, secret), exactBuffer(utf8Bytes(data))));
}

/**
 * The bytes as an ArrayBuffer of their own: k6's WebCrypto takes the whole buffer behind a
 * typed array and ignores its offset and length, so a view into a larger buffer would sign
 * other bytes in k6 only.
 */
function exactBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** Meta's X-Hub-Signature-256: "sha256=" and the hex HMAC-SHA256 of the exact body bytes, keyed by the app secret. */
export async function metaSignature(appSecret: string, body: string): Promise<string> {
  return `sha256=${toHex(await hmac('SHA-256', appSecret, body))}`;
}

export type FormParams = [name: string, value: string][];

/**
 * Twilio's X-Twilio-Signature: base64 HMAC-SHA1, keyed by the auth token, over the URL
 * Twilio called followed by every POST parameter's name and value, sorted by name (a
 * repeated name by value, exact repeats once), as Twilio's own libraries build it.
 */
export async function twilioSignature(authToken: string, url: string, params: FormParams): Promise<string> {
  return toBase64(await hmac('SHA-1', authToken, url + twilioParamString(params)));
}

export function twilioParamString(params: FormParams): string {
  const unique = new Map(params.map((pair) => [`${pair[0]}\u0000${pair[1]}`, pair]));
  const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...unique.values()]
    .sort(([a, av], [b, bv]) => (a === b ? compare(av, bv) : compare(a, b)))
    .map(([name, value]) => name + value)
    .join('');
}
