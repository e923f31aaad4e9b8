import type { MalformedItem, MessageItem } from '../../src/ledger/items';
import { parseMetaBody } from '../../src/webhooks/meta';
import { metaFixture, metaFixtureJson, RECEIVED_AT_MS, REPLAY_WINDOW_SECONDS } from './fixtures';

function parse(body: Buffer | string | object) {
  const raw = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return parseMetaBody(raw, RECEIVED_AT_MS, REPLAY_WINDOW_SECONDS);
}

function onlyMalformed(body: Buffer | string | object): MalformedItem {
  const items = parse(body);
  expect(items).toHaveLength(1);
  expect(items[0]!.kind).toBe('malformed');
  return items[0] as MalformedItem;
}

describe('Meta bodies that are not a valid envelope', () => {
  const withoutEntry = () => {
    const body = metaFixtureJson('text');
    delete body.entry;
    return body;
  };
  it.each([
    ['invalid JSON', () => '{"object":"whatsapp_business_account","entry":[{'],
    ['a wrong object', () => ({ ...metaFixtureJson('text'), object: 'instagram' })],
    ['a missing entry', withoutEntry],
    ['an empty entry list', () => ({ ...metaFixtureJson('text'), entry: [] })],
    ['a JSON array', () => '[]'],
  ])('turns %s into one malformed item keyed by the bytes', (_label, build) => {
    const built = build();
    const raw = Buffer.from(typeof built === 'string' ? built : JSON.stringify(built));
    const item = onlyMalformed(raw);
    expect(item.messageId).toMatch(/^malformed:[0-9a-f]{40}$/);
    expect(item.rawBody).toBe(raw.toString('utf8'));
    expect(onlyMalformed(Buffer.from(raw)).messageId).toBe(item.messageId);
  });

  it('keeps a body that is not UTF-8 byte for byte, as base64, instead of decoding it with replacement characters', () => {
    const raw = Buffer.concat([Buffer.from('{"object":"whatsapp_business_account","entry":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]);
    const item = onlyMalformed(raw);
    expect(item.rawBody).toBe(`base64:${raw.toString('base64')}`);
    expect(Buffer.from(item.rawBody.slice('base64:'.length), 'base64').equals(raw)).toBe(true);
  });

  it('gives different bytes different malformed keys', () => {
    expect(onlyMalformed('{"a":1').messageId).not.toBe(onlyMalformed('{"a":2').messageId);
  });
});

describe('Meta malformed parts of a valid envelope', () => {
  it('records a bad message under its own id while its siblings are fine', () => {
    const body = metaFixtureJson('multi-entry');
    delete body.entry[0].changes[0].value.messages[1].timestamp;
    const items = parse(body);
    expect(items.map((i) => [i.kind, i.messageId])).toEqual([
      ['message', 'wamid.MULTI-E0-C0-M0'],
      ['malformed', 'wamid.MULTI-E0-C0-M1'],
      ['message', 'wamid.MULTI-E0-C1-M0'],
      ['message', 'wamid.MULTI-E1-C1-M0'],
    ]);
    expect(items[1]).toMatchObject({ sender: '5511987654321', reason: expect.stringContaining('timestamp') });
  });

  it('records a message whose content does not match its type as malformed', () => {
    const body = metaFixtureJson('location');
    body.entry[0].changes[0].value.messages[0].location.latitude = 'north';
    const item = onlyMalformed(body);
    expect(item.messageId).toBe('wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQLOCATION01');
    expect(item.reason).toContain('location.latitude');
  });

  it('gives two id-less bad messages of one body two distinct, repeatable keys', () => {
    const body = metaFixtureJson('multi-entry');
    const messages = body.entry[0].changes[0].value.messages;
    delete messages[0].id;
    delete messages[1].id;
    const first = parse(body).filter((i) => i.kind === 'malformed');
    expect(first).toHaveLength(2);
    expect(first[0]!.messageId).toMatch(/^malformed:/);
    expect(first[0]!.messageId).not.toBe(first[1]!.messageId);
    expect(parse(body).filter((i) => i.kind === 'malformed').map((i) => i.messageId)).toEqual(first.map((i) => i.messageId));
  });

  it('judges each change on its own when one change value is broken', () => {
    const body = metaFixtureJson('multi-entry');
    body.entry[0].changes[1].value = null;
    const items = parse(body);
    expect(items.map((i) => i.kind)).toEqual(['message', 'message', 'malformed', 'message']);
  });

  it('keeps the messages of the other entries and changes when one entry has no changes or one change no field', () => {
    const withoutChanges = metaFixtureJson('multi-entry');
    delete withoutChanges.entry[1].changes;
    expect(parse(withoutChanges).map((i) => i.kind)).toEqual(['message', 'message', 'message', 'malformed']);
    const withoutField = metaFixtureJson('multi-entry');
    delete withoutField.entry[0].changes[1].field;
    const items = parse(withoutField);
    expect(items.map((i) => i.kind)).toEqual(['message', 'message', 'malformed', 'message']);
    // Each broken part has a row of its own, keyed by where it sits.
    expect(items[2]!.messageId).toMatch(/:entry\.0\.changes\.1$/);
  });

  it('gives a body with more than 20 broken parts one malformed row for them all, instead of a row (and a copy of the body) per part, and keeps its good messages', () => {
    const withBroken = (count: number) => {
      const body = metaFixtureJson('multi-entry');
      body.entry.push(...Array.from({ length: count }, () => ({ id: 'x' })));
      return parse(body);
    };
    expect(withBroken(20).filter((i) => i.kind === 'malformed')).toHaveLength(20);
    expect(withBroken(20).filter((i) => i.kind === 'message')).toHaveLength(4);
    const broken = withBroken(50_000);
    expect(broken.map((i) => i.kind)).toEqual(['message', 'message', 'message', 'message', 'malformed']);
    const folded = broken[4] as Extract<(typeof broken)[number], { kind: 'malformed' }>;
    expect(folded.messageId).toMatch(/^malformed:[0-9a-f]{40}$/);
    expect(folded.reason).toMatch(/^50000 parts of the body are malformed; the first: entry\.2/);
  });

  it('records a status without an id as malformed, not as a receipt', () => {
    const body = metaFixtureJson('status-delivered');
    delete body.entry[0].changes[0].value.statuses[0].id;
    expect(onlyMalformed(body).messageId).toMatch(/^malformed:[0-9a-f]{40}:/);
  });
});

describe('Meta malformed reasons', () => {
  const phone = '16505551234';
  const text = '2x margherita, one coke please';

  it.each([
    ['a non-numeric timestamp', (m: any) => (m.timestamp = `${phone} ${text}`)],
    ['a numeric text body', (m: any) => (m.text = { body: Number(phone) })],
    ['an object as type', (m: any) => (m.type = { phone, text })],
    ['a too long id', (m: any) => (m.id = phone.repeat(30))],
  ])('never contain input values (%s)', (_label, corrupt) => {
    const body = metaFixtureJson('text');
    corrupt(body.entry[0].changes[0].value.messages[0]);
    const { reason } = onlyMalformed(body);
    expect(reason.length).toBeGreaterThan(0);
    expect(reason).not.toContain(phone);
    expect(reason).not.toContain('margherita');
  });

  it('never contain the metadata it rejects', () => {
    const body = metaFixtureJson('text');
    body.entry[0].changes[0].value.metadata.phone_number_id = 106540352242922;
    body.entry[0].changes[0].value.messaging_product = 'secret-product-4155550123';
    const { reason } = onlyMalformed(body);
    expect(reason).toContain('phone_number_id');
    expect(reason).not.toMatch(/106540352242922|4155550123/);
  });
});

describe('Meta replay window', () => {
  const nowSeconds = RECEIVED_AT_MS / 1000;
  const verdictAt = (timestampSeconds: number) => {
    const body = metaFixtureJson('text');
    body.entry[0].changes[0].value.messages[0].timestamp = String(timestampSeconds);
    return (parse(body)[0] as MessageItem).verdict;
  };

  it('rejects a message older than the window', () => {
    expect(verdictAt(nowSeconds - REPLAY_WINDOW_SECONDS - 1)).toBe('replay_rejected');
  });

  it('queues a message just inside the window', () => {
    expect(verdictAt(nowSeconds - REPLAY_WINDOW_SECONDS)).toBe('queued');
  });

  it('rejects a message more than 300 s in the future', () => {
    expect(verdictAt(nowSeconds + 301)).toBe('replay_rejected');
  });

  it('queues a message exactly 300 s in the future', () => {
    expect(verdictAt(nowSeconds + 300)).toBe('queued');
  });

  it('honours the window it is given', () => {
    const body = metaFixture('text');
    expect((parseMetaBody(body, RECEIVED_AT_MS, 4)[0] as MessageItem).verdict).toBe('replay_rejected');
    expect((parseMetaBody(body, RECEIVED_AT_MS, 5)[0] as MessageItem).verdict).toBe('queued');
  });
});
