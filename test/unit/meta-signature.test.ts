import { createHmac } from 'node:crypto';
import { verifyMetaSignature } from '../../src/webhooks/meta';
import { inboundRequest, metaFixture } from './fixtures';

const SECRET = 'meta-app-secret-current';
const OLD_SECRET = 'meta-app-secret-previous';

/** Written out here rather than taken from src, so that a bug there cannot agree with itself. */
function sign(secret: string, body: Buffer | string): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

function verify(body: Buffer | string, signature: string | undefined, secrets: string[] = [SECRET]): boolean {
  const headers: Record<string, string> = signature === undefined ? {} : { 'X-Hub-Signature-256': signature };
  return verifyMetaSignature(inboundRequest(body, headers), secrets);
}

describe('Meta X-Hub-Signature-256', () => {
  const body = metaFixture('text');

  it('accepts a correct signature over the raw bytes', () => {
    expect(verify(body, sign(SECRET, body))).toBe(true);
  });

  it('accepts an upper-case hex digest', () => {
    expect(verify(body, 'sha256=' + sign(SECRET, body).slice(7).toUpperCase())).toBe(true);
  });

  it('rejects a tampered body', () => {
    const tampered = Buffer.from(body.toString('utf8').replace('2x margherita', '9x margherita'));
    expect(verify(tampered, sign(SECRET, body))).toBe(false);
  });

  it('rejects the same JSON re-serialised, because the bytes differ', () => {
    const reserialised = JSON.stringify(JSON.parse(body.toString('utf8')));
    expect(verify(reserialised, sign(SECRET, body))).toBe(false);
  });

  it('rejects a Meta payload signed with another secret', () => {
    expect(verify(body, sign('someone-else', body))).toBe(false);
  });

  it('rejects a request without the header', () => {
    expect(verify(body, undefined)).toBe(false);
  });

  it('rejects a digest without the "sha256=" prefix', () => {
    expect(verify(body, sign(SECRET, body).slice('sha256='.length))).toBe(false);
  });

  it('rejects a digest under another algorithm prefix', () => {
    expect(verify(body, sign(SECRET, body).replace('sha256=', 'sha1='))).toBe(false);
  });

  it.each([
    ['one hex digit short', (hex: string) => hex.slice(0, -1)],
    ['one hex digit too long', (hex: string) => hex + 'f'],
    ['one byte too long', (hex: string) => hex + '00'],
    ['a non-hex character', (hex: string) => 'z' + hex.slice(1)],
    ['empty', () => ''],
  ])('rejects a signature that is %s', (_label, mangle) => {
    const hex = sign(SECRET, body).slice('sha256='.length);
    expect(verify(body, 'sha256=' + mangle(hex))).toBe(false);
  });

  it('accepts the second secret of a rotation list', () => {
    expect(verify(body, sign(OLD_SECRET, body), [SECRET, OLD_SECRET])).toBe(true);
  });

  it('rejects a secret that has been rotated out of the list', () => {
    expect(verify(body, sign(OLD_SECRET, body), [SECRET])).toBe(false);
  });

  it('rejects everything when no secret is configured', () => {
    expect(verify(body, sign('', body), [])).toBe(false);
  });

  it('never treats an empty entry in the list as a secret', () => {
    expect(verify(body, sign('', body), ['', SECRET])).toBe(false);
  });
});

describe('Meta signs the bytes it sends', () => {
  // The same text, once as UTF-8 and once as JSON unicode escapes: equal after JSON.parse, not as bytes.
  const literal = Buffer.from('{"text":{"body":"café 🍕"}}', 'utf8');
  const escaped = Buffer.from('{"text":{"body":"caf\\u00e9 \\ud83c\\udf55"}}', 'utf8');

  it('decodes both spellings to the same JSON', () => {
    expect(JSON.parse(escaped.toString('utf8'))).toEqual(JSON.parse(literal.toString('utf8')));
    expect(literal.equals(escaped)).toBe(false);
  });

  it('verifies the non-ASCII body only with its own signature', () => {
    expect(verify(literal, sign(SECRET, literal))).toBe(true);
    expect(verify(literal, sign(SECRET, escaped))).toBe(false);
  });

  it('verifies the escaped body only with its own signature', () => {
    expect(verify(escaped, sign(SECRET, escaped))).toBe(true);
    expect(verify(escaped, sign(SECRET, literal))).toBe(false);
  });

  it('rejects a signature computed over the body decoded as Latin-1', () => {
    expect(verify(literal, sign(SECRET, Buffer.from(literal.toString('latin1'), 'utf8')))).toBe(false);
  });
});
