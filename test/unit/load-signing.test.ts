import { createHmac } from 'node:crypto';
import { encodeForm, toBase64, toHex, utf8Bytes } from '../../load-tests/lib/encoding.ts';
import { META_WEBHOOK_PATH, metaTextBody, signedMetaRequest, signedTwilioRequest, TWILIO_WEBHOOK_PATH, twilioTextParams } from '../../load-tests/lib/payloads.ts';
import { metaSignature, twilioParamString, twilioSignature } from '../../load-tests/lib/sign.ts';
import { parseMetaBody, verifyMetaSignature } from '../../src/webhooks/meta';
import { parseForm, parseTwilioForm, twilioParamString as gatewayParamString, verifyTwilioSignature } from '../../src/webhooks/twilio';
import { inboundRequest } from './fixtures';

const SECRET = 'load-meta-secret';
const TOKEN = 'load-twilio-token';
const PUBLIC_BASE_URL = 'https://shop.example.com';
const TEXTS = ['2x margherita, one coke', 'café con leche ☕ y 🍕 pizza', 'a+b=c & d%20e / "quoted" \\ ñ', ''];

/** The gateway's own verifiers decide: the load library signs as Meta and Twilio do, or the gateway answers 401. */
describe('load-test signing library', () => {
  it.each(TEXTS)('signs a Meta body the gateway accepts, byte for byte: %j', async (text) => {
    const request = await signedMetaRequest(SECRET, { id: 'wamid.x', from: '15550001111', text, timestampSeconds: 1767225600 }, {});
    const inbound = inboundRequest(request.body, request.headers, META_WEBHOOK_PATH);
    expect(verifyMetaSignature(inbound, [SECRET])).toBe(true);
    expect(verifyMetaSignature(inbound, ['another-secret'])).toBe(false);
    const [item] = parseMetaBody(Buffer.from(request.body, 'utf8'), 1767225600_000, 3600);
    expect(item).toMatchObject({ kind: 'message', messageId: 'wamid.x', sender: '15550001111', verdict: 'queued' });
  });

  it('signs with the rotated-in secret that the gateway lists first', async () => {
    const body = metaTextBody({ id: 'wamid.y', from: '15550001111', text: 'hi', timestampSeconds: 1 });
    const inbound = inboundRequest(body, { 'X-Hub-Signature-256': await metaSignature(SECRET, body) });
    expect(verifyMetaSignature(inbound, ['old-secret', SECRET])).toBe(true);
  });

  it.each(TEXTS)('signs a Twilio form the gateway accepts over PUBLIC_BASE_URL and the sorted params: %j', async (text) => {
    const request = await signedTwilioRequest(TOKEN, PUBLIC_BASE_URL, { sid: 'SM0123456789abcdef0123456789abcdef', from: 'whatsapp:+15550002222', text }, {});
    const params = parseForm(Buffer.from(request.body, 'utf8'));
    const check = { secrets: [TOKEN], url: PUBLIC_BASE_URL + TWILIO_WEBHOOK_PATH, params, signature: request.headers['X-Twilio-Signature'] };
    expect(verifyTwilioSignature(check)).toBe(true);
    expect(verifyTwilioSignature({ ...check, secrets: ['another-token'] })).toBe(false);
    expect(verifyTwilioSignature({ ...check, url: 'https://elsewhere.example.com' + TWILIO_WEBHOOK_PATH })).toBe(false);
    expect(parseTwilioForm(Buffer.from(request.body, 'utf8'), 0)[0]).toMatchObject({ kind: 'message', messageId: 'SM0123456789abcdef0123456789abcdef', sender: 'whatsapp:+15550002222' });
  });

  it('builds the signed Twilio string as the gateway does, repeated names and values included', () => {
    const params: [string, string][] = [['b', '2'], ['a', 'z'], ['a', 'y'], ['b', '2'], ['Body', 'x y']];
    expect(twilioParamString(params)).toBe(gatewayParamString(params));
  });

  it('form-encodes so that the gateway decodes every parameter back unchanged', () => {
    const params = twilioTextParams({ sid: 'SM1', from: 'whatsapp:+15550002222', text: TEXTS[2]! });
    expect(parseForm(Buffer.from(encodeForm(params), 'utf8'))).toEqual(params);
  });

  it('computes the same HMACs as Node, in hex and in base64', async () => {
    const data = 'payload ☕ 🍕';
    expect(await metaSignature('k', data)).toBe('sha256=' + createHmac('sha256', 'k').update(data).digest('hex'));
    expect(await twilioSignature('k', 'https://a.example.com/p', [])).toBe(createHmac('sha1', 'k').update('https://a.example.com/p').digest('base64'));
  });

  it('encodes UTF-8, hex and base64 exactly as Buffer does', () => {
    const samples = ['', 'a', 'ab', 'abc', 'ñ€𝄞', '\ud800 lone surrogate', 'x'.repeat(1000)];
    for (const text of samples) {
      const bytes = utf8Bytes(text);
      expect(Buffer.from(bytes).equals(Buffer.from(text, 'utf8'))).toBe(true);
      expect(toHex(bytes)).toBe(Buffer.from(text, 'utf8').toString('hex'));
      expect(toBase64(bytes)).toBe(Buffer.from(text, 'utf8').toString('base64'));
    }
  });
});
