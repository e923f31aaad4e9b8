import fc from 'fast-check';

/** Property runs per test; HOSTILE_RUNS raises it for a longer hunt. */
export const RUNS = Number(process.env.HOSTILE_RUNS ?? 200);

const awkwardStrings = fc.constantFrom(
  '\u0000',
  'a\u0000b',
  '\ud800', // lone high surrogate
  '\udfff', // lone low surrogate
  '\u202e\u200f', // right-to-left override and mark
  '\ufeff',
  '𝟘🍕',
  '',
  ' '.repeat(64),
);
const pollutingKeys = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf');
/** Numbers where strings are expected and the reverse. */
const numberLike = fc.oneof(fc.integer().map(String), fc.double().map(String), fc.constantFrom('1e309', '-0', 'NaN', '0x10'));

export const hostileString = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), awkwardStrings, numberLike);
export const hostileKey = fc.oneof(pollutingKeys, hostileString);
const hostileLeaf = fc.oneof(
  hostileString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -1, 1e21),
);

/** Any JSON value, keys including prototype-polluting ones. */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    hostileLeaf,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(hostileKey, tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** JSON nested `depth` deep: arrays or objects. */
export function deeplyNested(depth: number, asObject: boolean): string {
  return asObject ? '{"a":'.repeat(depth) + '1' + '}'.repeat(depth) : '['.repeat(depth) + ']'.repeat(depth);
}

/** A real Meta envelope with one part of it replaced by hostile values. */
export const mutatedMetaEnvelope = fc
  .record({
    from: fc.oneof(hostileString, fc.integer().map((n) => n as unknown)),
    id: fc.oneof(hostileString, fc.integer().map((n) => n as unknown)),
    timestamp: fc.oneof(hostileString, fc.integer(), fc.double()),
    body: hostileString,
    type: fc.oneof(fc.constantFrom('text', 'image', 'order', 'interactive', 'unknown'), hostileString),
    extraKey: pollutingKeys,
    extraValue: hostileJson,
  })
  .map(({ from, id, timestamp, body, type, extraKey, extraValue }) => {
    const message: Record<string, unknown> = { from, id, timestamp, type, text: { body } };
    // Set as an own property (JSON.parse does the same with "__proto__").
    Object.defineProperty(message, extraKey, { value: extraValue, enumerable: true, configurable: true, writable: true });
    return JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: '1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { phone_number_id: '1' }, messages: [message] } }] }],
    });
  });

/** Form bodies: hostile names and values, repeated names, raw bytes. */
export const hostileForm = fc.array(fc.tuple(fc.oneof(hostileKey, fc.constantFrom('MessageSid', 'From', 'To', 'Body', 'NumMedia')), hostileString), {
  maxLength: 12,
});
