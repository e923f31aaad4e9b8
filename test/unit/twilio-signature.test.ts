import { createHmac } from 'node:crypto';
import { createTwilioAdapter, parseForm, verifyTwilioSignature, type FormParams } from '../../src/webhooks/twilio';
import { inboundRequest, twilioFixture } from './fixtures';

/**
 * Twilio's algorithm written out independently of src, as Twilio's own libraries do it:
 * URL, then names in sorted order, each name's distinct values sorted, HMAC-SHA1, base64.
 */
function referenceSignature(token: string, url: string, params: FormParams, hash: 'sha1' | 'sha256' = 'sha1'): string {
  const byName = new Map<string, Set<string>>();
  for (const [name, value] of params) byName.set(name, (byName.get(name) ?? new Set()).add(value));
  let data = url;
  for (const name of [...byName.keys()].sort()) for (const value of [...byName.get(name)!].sort()) data += name + value;
  return createHmac(hash, token).update(data, 'utf8').digest('base64');
}

function verify(url: string, params: FormParams, signature: string | undefined, authTokens = [DOCS_TOKEN]): boolean {
  return verifyTwilioSignature({ secrets: authTokens, url, params, signature });
}

// The worked example of Twilio's webhook security documentation.
const DOCS_TOKEN = '12345';
const DOCS_URL = 'https://mycompany.com/myapp.php?foo=1&bar=2';
const docsParams = (caller: string): FormParams => [
  ['CallSid', 'CA1234567890ABCDE'],
  ['Caller', caller],
  ['Digits', '1234'],
  ['From', caller],
  ['To', '+18005551212'],
];

describe("Twilio's documented vectors", () => {
  it.each([
    ['+14158675309', 'RSOYDt4T1cUTdK1PDd93/VVr8B8='],
    ['+14158675310', 'GvWf1cFY/Q7PnoempGyD5oXAezc='],
  ])('accepts the signature for Caller %s', (caller, signature) => {
    expect(verify(DOCS_URL, docsParams(caller), signature)).toBe(true);
  });

  it('rejects each vector when it is swapped with the other', () => {
    expect(verify(DOCS_URL, docsParams('+14158675309'), 'GvWf1cFY/Q7PnoempGyD5oXAezc=')).toBe(false);
    expect(verify(DOCS_URL, docsParams('+14158675310'), 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')).toBe(false);
  });

  it('accepts the same signature when the URL carries ":443"', () => {
    expect(verify('https://mycompany.com:443/myapp.php?foo=1&bar=2', docsParams('+14158675309'), 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')).toBe(true);
  });

  it('accepts a signature made over ":443" when the URL has no port', () => {
    const signed = referenceSignature(DOCS_TOKEN, 'https://mycompany.com:443/myapp.php?foo=1&bar=2', docsParams('+14158675309'));
    expect(verify(DOCS_URL, docsParams('+14158675309'), signed)).toBe(true);
  });

  it('rejects the signature when the URL carries another port', () => {
    expect(verify('https://mycompany.com:8443/myapp.php?foo=1&bar=2', docsParams('+14158675309'), 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')).toBe(false);
  });

  it('rejects the signature for another query string', () => {
    expect(verify('https://mycompany.com/myapp.php?foo=1&bar=3', docsParams('+14158675309'), 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')).toBe(false);
  });

  it('rejects a tampered param', () => {
    const tampered = docsParams('+14158675309').map(([n, v]): [string, string] => [n, n === 'Digits' ? '9999' : v]);
    expect(verify(DOCS_URL, tampered, 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')).toBe(false);
  });

  it('rejects a signature whose unused base64 bits differ', () => {
    // "c" and "d" differ only in the two bits that the final base64 character does not use.
    expect(verify(DOCS_URL, docsParams('+14158675310'), 'GvWf1cFY/Q7PnoempGyD5oXAezd=')).toBe(false);
  });

  it('rejects a missing signature', () => {
    expect(verify(DOCS_URL, docsParams('+14158675309'), undefined)).toBe(false);
  });
});

describe('Twilio auth token rotation', () => {
  const url = 'https://shop.example.com/api/v1/whatsapp-hardened/twilio/webhook';
  const params = parseForm(twilioFixture('inbound-text'));

  it('accepts a signature from the token second in the list', () => {
    expect(verify(url, params, referenceSignature('previous-token', url, params), ['current-token', 'previous-token'])).toBe(true);
  });

  it('rejects a signature from a rotated-out token', () => {
    expect(verify(url, params, referenceSignature('retired-token', url, params), ['current-token', 'previous-token'])).toBe(false);
  });
});

describe('Twilio form bodies', () => {
  const url = 'https://shop.example.com/api/v1/whatsapp-hardened/twilio/webhook';

  it('signs "+" and percent-encoded unicode after decoding them', () => {
    const raw = twilioFixture('inbound-text');
    expect(raw.toString('utf8')).toContain('Body=2x+margherita+%2B+1+coke');
    const decoded = parseForm(raw);
    expect(decoded).toContainEqual(['Body', '2x margherita + 1 coke, por favor 🍕']);
    expect(decoded).toContainEqual(['From', 'whatsapp:+5521987654321']);
    expect(verify(url, decoded, referenceSignature(DOCS_TOKEN, url, decoded))).toBe(true);
  });

  it('rejects a signature computed over the still-encoded values', () => {
    const raw = twilioFixture('inbound-text').toString('utf8');
    const encoded = raw.split('&').map((pair): [string, string] => pair.split('=') as [string, string]);
    expect(verify(url, parseForm(Buffer.from(raw)), referenceSignature(DOCS_TOKEN, url, encoded))).toBe(false);
  });

  it('accepts unknown extra params when they were signed', () => {
    const params: FormParams = [...parseForm(twilioFixture('inbound-text')), ['ChannelMetadata', '{"type":"whatsapp"}']];
    expect(verify(url, params, referenceSignature(DOCS_TOKEN, url, params))).toBe(true);
  });

  it('rejects an extra param that was not signed', () => {
    const params = parseForm(twilioFixture('inbound-text'));
    const signature = referenceSignature(DOCS_TOKEN, url, params);
    expect(verify(url, [...params, ['Injected', '1']], signature)).toBe(false);
  });

  it('signs every value of a repeated param, in sorted order, whatever the order sent', () => {
    const signed: FormParams = [['MessageSid', 'SM1'], ['MediaUrl', 'https://a.example/1'], ['MediaUrl', 'https://a.example/2']];
    const sent: FormParams = [['MediaUrl', 'https://a.example/2'], ['MessageSid', 'SM1'], ['MediaUrl', 'https://a.example/1']];
    expect(verify(url, sent, referenceSignature(DOCS_TOKEN, url, signed))).toBe(true);
    expect(verify(url, [['MessageSid', 'SM1'], ['MediaUrl', 'https://a.example/1']], referenceSignature(DOCS_TOKEN, url, signed))).toBe(false);
  });

  it('counts an exactly repeated param once, as Twilio libraries do', () => {
    const sent: FormParams = [['Tag', 'x'], ['Tag', 'x'], ['MessageSid', 'SM1']];
    const onceEach = createHmac('sha1', DOCS_TOKEN).update(url + 'MessageSidSM1Tagx').digest('base64');
    expect(verify(url, sent, onceEach)).toBe(true);
  });
});

describe('Twilio adapter', () => {
  const path = '/api/v1/whatsapp-hardened/twilio/webhook?shop=42';
  const adapter = (skipValidation = false) =>
    createTwilioAdapter({ authTokens: [DOCS_TOKEN], publicBaseUrl: 'https://shop.example.com/', skipValidation });

  it('verifies against the public base URL plus path and query as received', () => {
    const raw = twilioFixture('inbound-media');
    const signature = referenceSignature(DOCS_TOKEN, 'https://shop.example.com' + path, parseForm(raw));
    expect(adapter().verify(inboundRequest(raw, { 'X-Twilio-Signature': signature }, path))).toBe(true);
    expect(adapter().verify(inboundRequest(raw, { 'X-Twilio-Signature': signature }, '/other' + path))).toBe(false);
  });

  it('accepts a signature over the URL with its connection-override fragment only when that fragment is configured', () => {
    const raw = twilioFixture('inbound-media');
    const fragment = '#rc=3&rp=ct,rt,5xx';
    const withFragment = referenceSignature(DOCS_TOKEN, 'https://shop.example.com' + path + fragment, parseForm(raw));
    const withoutFragment = referenceSignature(DOCS_TOKEN, 'https://shop.example.com' + path, parseForm(raw));
    const configured = createTwilioAdapter({ authTokens: [DOCS_TOKEN], publicBaseUrl: 'https://shop.example.com', urlFragment: fragment, skipValidation: false });
    expect(configured.verify(inboundRequest(raw, { 'X-Twilio-Signature': withFragment }, path))).toBe(true);
    expect(configured.verify(inboundRequest(raw, { 'X-Twilio-Signature': withoutFragment }, path))).toBe(true);
    expect(adapter().verify(inboundRequest(raw, { 'X-Twilio-Signature': withFragment }, path))).toBe(false);
    const otherFragment = referenceSignature(DOCS_TOKEN, 'https://shop.example.com' + path + '#rc=5', parseForm(raw));
    expect(configured.verify(inboundRequest(raw, { 'X-Twilio-Signature': otherFragment }, path))).toBe(false);
  });

  it('rejects an unsigned request unless validation is skipped', () => {
    const raw = twilioFixture('inbound-media');
    expect(adapter().verify(inboundRequest(raw, {}, path))).toBe(false);
    expect(adapter(true).verify(inboundRequest(raw, {}, path))).toBe(true);
  });
});

describe('Twilio Webhook Rules: a shared key signs instead of the auth token', () => {
  const path = '/api/v1/whatsapp-hardened/twilio/webhook';
  const url = 'https://shop.example.com' + path;
  const raw = twilioFixture('inbound-text');
  const params = parseForm(raw);
  const settings = (algorithm: string) => ({ 'X-Twilio-Webhooks-Signature-Settings': `key=KS0123456789abcdef0123456789abcdef,algorithm=${algorithm}` });
  const adapter = (sharedKeys: string[]) =>
    createTwilioAdapter({ authTokens: [DOCS_TOKEN], sharedKeys, publicBaseUrl: 'https://shop.example.com', skipValidation: false });
  const posted = (headers: Record<string, string>) => inboundRequest(raw, headers, path);

  it('accepts HMAC-SHA256 by the shared key when the settings header names it', () => {
    const signature = referenceSignature('shared-secret', url, params, 'sha256');
    expect(signature).toHaveLength(44);
    expect(adapter(['shared-secret']).verify(posted({ 'X-Twilio-Signature': signature, ...settings('HMAC_SHA256') }))).toBe(true);
  });

  it('accepts HMAC-SHA1 by the shared key, and the second key of a rotation', () => {
    const signature = referenceSignature('previous-shared', url, params, 'sha1');
    expect(adapter(['current-shared', 'previous-shared']).verify(posted({ 'X-Twilio-Signature': signature, ...settings('HMAC_SHA1') }))).toBe(true);
  });

  it('reads the settings header with spaces after its commas and the algorithm in any case, and an empty one as absent', () => {
    const sha256 = referenceSignature('shared-secret', url, params, 'sha256');
    for (const header of ['key=KS1, algorithm=HMAC_SHA256', ' algorithm = hmac_sha256 ,key=KS1', 'algorithm=Hmac_Sha256']) {
      expect([header, adapter(['shared-secret']).verify(posted({ 'X-Twilio-Signature': sha256, 'X-Twilio-Webhooks-Signature-Settings': header }))]).toEqual([header, true]);
    }
    const byToken = referenceSignature(DOCS_TOKEN, url, params, 'sha1');
    expect(adapter(['shared-secret']).verify(posted({ 'X-Twilio-Signature': byToken, 'X-Twilio-Webhooks-Signature-Settings': ' ' }))).toBe(true);
  });

  it('refuses a shared key\'s signature sent without the settings header, which is checked against the auth tokens', () => {
    const sha1 = referenceSignature('shared-secret', url, params, 'sha1');
    expect(adapter(['shared-secret']).verify(posted({ 'X-Twilio-Signature': sha1 }))).toBe(false);
  });

  it('refuses an auth token\'s signature under the settings header, which is checked against the shared keys only', () => {
    const byToken = referenceSignature(DOCS_TOKEN, url, params, 'sha1');
    expect(adapter(['shared-secret']).verify(posted({ 'X-Twilio-Signature': byToken, ...settings('HMAC_SHA1') }))).toBe(false);
    expect(adapter(['shared-secret']).verify(posted({ 'X-Twilio-Signature': byToken }))).toBe(true);
  });

  it('refuses a signature in another algorithm than the header names, an algorithm Twilio does not sign with, and no shared key', () => {
    const sha256 = referenceSignature('shared-secret', url, params, 'sha256');
    expect(adapter(['shared-secret']).verify(posted({ 'X-Twilio-Signature': sha256, ...settings('HMAC_SHA1') }))).toBe(false);
    expect(adapter(['shared-secret']).verify(posted({ 'X-Twilio-Signature': sha256, ...settings('HMAC_SHA512') }))).toBe(false);
    expect(adapter([]).verify(posted({ 'X-Twilio-Signature': sha256, ...settings('HMAC_SHA256') }))).toBe(false);
    expect(adapter(['other-secret']).verify(posted({ 'X-Twilio-Signature': sha256, ...settings('HMAC_SHA256') }))).toBe(false);
  });
});
