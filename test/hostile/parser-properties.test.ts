import fc from 'fast-check';
import { parseMetaWebhook, verifyMetaSignature } from '../../src/webhooks/meta';
import { metaSignature } from '../../src/webhooks/samples';
import { parseForm, parseTwilioForm, verifyTwilioSignature } from '../../src/webhooks/twilio';
import { verifyHmac } from '../../src/webhooks/hmac';
import { deeplyNested, hostileForm, hostileJson, hostileString, mutatedMetaEnvelope, RUNS } from './arbitraries';

/**
 * The parsers turn any verified bytes into ledger items, never an exception: whatever the
 * bytes, each item is a known kind, and nothing they contain reaches Object.prototype.
 */
const NOW_MS = Date.now();
const WINDOW_SECONDS = 300;
const KINDS = ['message', 'status', 'malformed'];

function expectOnlyKnownItems(items: { kind: string }[]): void {
  for (const item of items) expect(KINDS).toContain(item.kind);
}

afterEach(() => {
  // Prototype pollution would show here, in any later test too.
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.keys(Object.prototype)).toEqual([]);
});

describe('the Meta parser', () => {
  it('answers random bytes with items, never an exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        expectOnlyKnownItems(parseMetaWebhook(Buffer.from(bytes), NOW_MS, WINDOW_SECONDS).items);
      }),
      { numRuns: RUNS },
    );
  });

  it('answers any JSON value, polluting keys included, with items', () => {
    fc.assert(
      fc.property(hostileJson, (value) => {
        const body = Buffer.from(JSON.stringify(value) ?? 'null');
        expectOnlyKnownItems(parseMetaWebhook(body, NOW_MS, WINDOW_SECONDS).items);
      }),
      { numRuns: RUNS },
    );
  });

  it('answers real envelopes with hostile fields: each message is recorded or malformed', () => {
    fc.assert(
      fc.property(mutatedMetaEnvelope, (body) => {
        const items = parseMetaWebhook(Buffer.from(body), NOW_MS, WINDOW_SECONDS).items;
        expect(items.length).toBeGreaterThan(0);
        expectOnlyKnownItems(items);
      }),
      { numRuns: RUNS },
    );
  });

  it('answers deep nesting and huge arrays as malformed, without overflowing the stack', () => {
    for (const body of [deeplyNested(20_000, false), deeplyNested(20_000, true)]) {
      const items = parseMetaWebhook(Buffer.from(body), NOW_MS, WINDOW_SECONDS).items;
      expect(items.map((item) => item.kind)).toEqual(['malformed']);
    }
    const hugeArray = JSON.stringify({ object: 'whatsapp_business_account', entry: Array.from({ length: 50_000 }, () => 1) });
    expect(parseMetaWebhook(Buffer.from(hugeArray), NOW_MS, WINDOW_SECONDS).items.map((item) => item.kind)).toEqual(['malformed']);
  });

  it('reads "__proto__" in a body as data, not as a prototype', () => {
    const body = '{"object":"whatsapp_business_account","__proto__":{"polluted":true},"entry":[{"id":"1","__proto__":{"polluted":true},"changes":[]}]}';
    expectOnlyKnownItems(parseMetaWebhook(Buffer.from(body), NOW_MS, WINDOW_SECONDS).items);
  });
});

describe('the Twilio parser', () => {
  it('answers random bytes with items, never an exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        expectOnlyKnownItems(parseTwilioForm(Buffer.from(bytes), NOW_MS));
      }),
      { numRuns: RUNS },
    );
  });

  it('answers hostile names and values, repeated and polluting names included, with items', () => {
    fc.assert(
      fc.property(hostileForm, (pairs) => {
        const body = Buffer.from(new URLSearchParams(pairs).toString());
        expectOnlyKnownItems(parseTwilioForm(body, NOW_MS));
        expect(parseForm(body)).toHaveLength(pairs.length);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('the signature code', () => {
  const SECRET = 'property-test-app-secret-0123456789';

  it('accepts exactly the signature of the bytes sent, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes, other) => {
        const rawBody = Buffer.from(bytes);
        const signed = (signature: string) => ({ rawBody, originalUrl: '/', header: (name: string) => (name === 'x-hub-signature-256' ? signature : undefined) });
        expect(verifyMetaSignature(signed(metaSignature(SECRET, rawBody)), [SECRET])).toBe(true);
        const changed = Buffer.concat([rawBody, Buffer.from(other)]);
        expect(verifyMetaSignature(signed(metaSignature(SECRET, changed)), [SECRET])).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses any signature header that is not the right digest, never throwing', () => {
    fc.assert(
      fc.property(hostileString, fc.uint8Array({ maxLength: 256 }), (signature, bytes) => {
        for (const encoding of ['hex', 'base64'] as const) {
          expect(verifyHmac({ algorithm: 'sha256', encoding, secrets: [SECRET], data: Buffer.from(bytes), signature })).toBe(false);
        }
        expect(verifyTwilioSignature({ secrets: [SECRET], url: 'https://shop.example.com/t', params: [], signature })).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses every body when no secret, or only an empty one, is configured', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        const data = Buffer.from(bytes);
        const signature = metaSignature('', data).slice('sha256='.length);
        expect(verifyHmac({ algorithm: 'sha256', encoding: 'hex', secrets: [''], data, signature })).toBe(false);
        expect(verifyHmac({ algorithm: 'sha256', encoding: 'hex', secrets: [], data, signature })).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });
});
