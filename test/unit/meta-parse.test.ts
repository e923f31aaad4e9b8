import type { LedgerItem, MessageItem, StatusItem } from '../../src/ledger/items';
import { parseMetaBody, parseMetaWebhook } from '../../src/webhooks/meta';
import { metaEnvelope, metaTextMessage } from '../../src/webhooks/samples';
import { metaFixture, metaFixtureJson, RECEIVED_AT_MS, REPLAY_WINDOW_SECONDS } from './fixtures';

const BUSINESS = '106540352242922';
const ANA = { sender: '16505551234', senderKey: 'US.13491208655302741918', contactName: 'Ana Souza' };

function parse(body: Buffer): LedgerItem[] {
  return parseMetaBody(body, RECEIVED_AT_MS, REPLAY_WINDOW_SECONDS);
}

function onlyMessage(body: Buffer): MessageItem {
  const items = parse(body);
  expect(items).toHaveLength(1);
  expect(items[0]!.kind).toBe('message');
  return items[0] as MessageItem;
}

describe('Meta message types', () => {
  it.each([
    ['text', 'text', 'TEXT0001'],
    ['image', 'image', 'IMAGE0001'],
    ['audio', 'audio', 'AUDIO0001'],
    ['video', 'video', 'VIDEO0001'],
    ['document', 'document', 'DOCUMENT01'],
    ['sticker', 'sticker', 'STICKER001'],
    ['location', 'location', 'LOCATION01'],
    ['contacts', 'contacts', 'CONTACTS01'],
    ['interactive-button-reply', 'interactive', 'BUTTONR001'],
    ['interactive-list-reply', 'interactive', 'LISTR00001'],
    ['interactive-nfm-reply', 'interactive', 'NFMREPLY01'],
    ['button', 'button', 'BUTTON0001'],
    ['order', 'order', 'ORDER00001'],
    ['reaction', 'reaction', 'REACTION01'],
    ['request-welcome', 'request_welcome', 'REQWELCOME'],
    ['unsupported', 'unsupported', 'UNSUPPORT1'],
    ['unknown', 'unknown', 'UNKNOWN0001'],
  ])('parses the %s fixture into a queued message item', (fixture, type, idSuffix) => {
    const item = onlyMessage(metaFixture(fixture));
    expect(item).toMatchObject({ source: 'whatsapp', messageId: `wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ${idSuffix}`, business: BUSINESS, type });
    expect(item).toMatchObject({ sender: ANA.sender, senderKey: ANA.senderKey, verdict: 'queued' });
    expect(item.payload).toMatchObject({ messageId: item.messageId, from: ANA.sender, contactName: ANA.contactName, type });
  });

  it('keeps the provider message object as the queued content', () => {
    const item = onlyMessage(metaFixture('order'));
    expect(item.payload.content).toMatchObject({ order: { product_items: [{ product_retailer_id: 'pizza-margherita', quantity: 2 }, {}] } });
    expect(item.timestampSeconds).toBe(1767225600);
  });

  it('takes a timestamp sent as a JSON number as it takes the documented string', () => {
    const body = metaFixtureJson('text');
    const documented = onlyMessage(Buffer.from(JSON.stringify(body)));
    body.entry[0].changes[0].value.messages[0].timestamp = Number(body.entry[0].changes[0].value.messages[0].timestamp);
    const numeric = onlyMessage(Buffer.from(JSON.stringify(body)));
    expect(numeric).toMatchObject({ timestampSeconds: documented.timestampSeconds, verdict: documented.verdict, messageId: documented.messageId });
    const receipt = metaFixtureJson('status-read');
    receipt.entry[0].changes[0].value.statuses[0].timestamp = Number(receipt.entry[0].changes[0].value.statuses[0].timestamp);
    const [status] = parse(Buffer.from(JSON.stringify(receipt))) as StatusItem[];
    expect(status).toMatchObject({ kind: 'status', receipt: 'read', timestampSeconds: Number(metaFixtureJson('status-read').entry[0].changes[0].value.statuses[0].timestamp) });
  });

  it('reads a body that starts with a byte-order mark', () => {
    const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), metaFixture('text')]);
    expect(onlyMessage(withBom).type).toBe('text');
  });

  it('records a message written in a group the business is in as finished, never queued; a group id that is no string is malformed', () => {
    const body = metaFixtureJson('text');
    const message = body.entry[0].changes[0].value.messages[0];
    message.group_id = 'Y2FwaV9ncm91cDoxNjUwNTU1MTIzNDoxMjAzNjMwMjk2NjAyNjQ4NDU';
    expect(onlyMessage(Buffer.from(JSON.stringify(body)))).toMatchObject({ type: 'text', senderKey: ANA.senderKey, verdict: 'processed' });
    message.group_id = 42;
    expect(parse(Buffer.from(JSON.stringify(body)))).toEqual([expect.objectContaining({ kind: 'malformed', messageId: message.id })]);
  });

  it('queues a message type it has never heard of inside a valid envelope', () => {
    const body = metaFixtureJson('text');
    const message = body.entry[0].changes[0].value.messages[0];
    delete message.text;
    Object.assign(message, { type: 'poll_vote', poll_vote: { option: 2 } });
    expect(onlyMessage(Buffer.from(JSON.stringify(body)))).toMatchObject({ type: 'poll_vote', verdict: 'queued' });
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])(
    'treats a message of type %s as an unknown type, not as a crash',
    (type) => {
      const body = metaFixtureJson('text');
      body.entry[0].changes[0].value.messages[0].type = type;
      expect(onlyMessage(Buffer.from(JSON.stringify(body)))).toMatchObject({ type, verdict: 'queued' });
    },
  );
});

describe('Meta senders', () => {
  it('keys the sender on the business-scoped user_id when the contact has one', () => {
    const body = metaFixtureJson('text');
    delete body.entry[0].changes[0].value.messages[0].from_user_id;
    expect(onlyMessage(Buffer.from(JSON.stringify(body)))).toMatchObject({ sender: ANA.sender, senderKey: ANA.senderKey });
  });

  it('keys the sender on wa_id when there is no user_id anywhere', () => {
    const body = metaFixtureJson('text');
    const value = body.entry[0].changes[0].value;
    delete value.messages[0].from_user_id;
    delete value.contacts[0].user_id;
    expect(onlyMessage(Buffer.from(JSON.stringify(body)))).toMatchObject({ sender: ANA.sender, senderKey: ANA.sender });
  });

  // An empty user_id became the sender's key, and the worker, which reads no message without
  // one, dead-lettered it with the message left queued for good; refused instead of left out,
  // an empty field made the lone contact partial, and its name and user id were lost.
  it.each([
    ['user_id', ANA.sender],
    ['wa_id', ANA.senderKey],
  ])('reads a contact\'s empty %s as left out, keeping its other fields and its name', (field, senderKey) => {
    const body = metaFixtureJson('text');
    const value = body.entry[0].changes[0].value;
    delete value.messages[0].from_user_id;
    value.contacts[0][field] = '';
    const item = onlyMessage(Buffer.from(JSON.stringify(body)));
    expect(item).toMatchObject({ sender: ANA.sender, senderKey, verdict: 'queued' });
    expect(item.payload.contactName).toBe(ANA.contactName);
  });

  it('refuses a message whose only sender is a contact\'s empty wa_id', () => {
    const body = metaFixtureJson('text');
    const value = body.entry[0].changes[0].value;
    delete value.messages[0].from;
    delete value.messages[0].from_user_id;
    value.contacts[0] = { wa_id: '', profile: { name: 'Ana Souza' } };
    expect(parse(Buffer.from(JSON.stringify(body)))).toMatchObject([{ kind: 'malformed' }]);
  });

  it('accepts a username-only user whose message has no from', () => {
    const item = onlyMessage(metaFixture('username-only'));
    expect(item).toMatchObject({ sender: 'BR.1502576394655843', senderKey: 'BR.1502576394655843', verdict: 'queued' });
    expect(item.payload.contactName).toBe('Maria');
  });

  it('takes the sender from the lone contact when the message names none', () => {
    const item = onlyMessage(metaFixture('contact-request-reply'));
    expect(item).toMatchObject({ type: 'contacts', sender: 'BR.1502576394655843', senderKey: 'BR.1502576394655843' });
  });

  it('does not borrow a lone contact that names someone else', () => {
    const body = metaFixtureJson('text');
    const value = body.entry[0].changes[0].value;
    delete value.messages[0].from_user_id;
    value.contacts = [{ profile: { name: 'Someone Else' }, wa_id: '447700900999', user_id: 'GB.99999' }];
    const item = onlyMessage(Buffer.from(JSON.stringify(body)));
    expect(item).toMatchObject({ sender: ANA.sender, senderKey: ANA.sender });
    expect(item.payload.contactName).toBeNull();
  });

  it('judges each contact and each of its fields on its own: a bad field loses its messages no more than that field', () => {
    const body = metaFixtureJson('text');
    const value = body.entry[0].changes[0].value;
    const second = { ...value.messages[0], id: `${value.messages[0].id}2`, from: '447700900123' };
    delete second.from_user_id;
    value.messages.push(second);
    value.contacts.push({ profile: 'not an object', wa_id: '447700900123', user_id: 'GB.447700900123' });
    const items = parse(Buffer.from(JSON.stringify(body))) as MessageItem[];
    expect(items.map((item) => [item.kind, item.verdict])).toEqual([['message', 'queued'], ['message', 'queued']]);
    expect(items[0]!.payload.contactName).toBe(ANA.contactName);
    // Still keyed on the user id its contact gives, as the sender's other messages are.
    expect(items[1]).toMatchObject({ sender: '447700900123', senderKey: 'GB.447700900123' });
    expect(items[1]!.payload.contactName).toBeNull();

    const lone = metaFixtureJson('text');
    const loneValue = lone.entry[0].changes[0].value;
    delete loneValue.messages[0].from_user_id;
    loneValue.contacts = [{ wa_id: 'x'.repeat(300), profile: { name: 'Too Long' } }];
    const item = onlyMessage(Buffer.from(JSON.stringify(lone)));
    expect(item).toMatchObject({ sender: ANA.sender, verdict: 'queued' });
    expect(item.payload.contactName).toBeNull();
  });

  it('parses system messages, which carry no contacts array', () => {
    expect(onlyMessage(metaFixture('system-user-changed-number'))).toMatchObject({ type: 'system', sender: ANA.sender, senderKey: ANA.senderKey });
    const changedId = onlyMessage(metaFixture('system-user-changed-user-id'));
    expect(changedId).toMatchObject({ type: 'system', sender: 'US.88120394857712003344', senderKey: 'US.88120394857712003344' });
    expect(changedId.payload.contactName).toBeNull();
  });
});

describe('Meta bodies with many parts', () => {
  it('yields one item per message across entries and changes, each with its own business and contact', () => {
    const items = parse(metaFixture('multi-entry')) as MessageItem[];
    expect(items.map((i) => [i.messageId, i.business, i.senderKey, i.payload.contactName])).toEqual([
      ['wamid.MULTI-E0-C0-M0', '106540352242922', 'US.13491208655302741918', 'Ana Souza'],
      ['wamid.MULTI-E0-C0-M1', '106540352242922', '5511987654321', 'Bruno Lima'],
      ['wamid.MULTI-E0-C1-M0', '106540352242999', '33612345678', 'Chloé Martin'],
      ['wamid.MULTI-E1-C1-M0', '106540352242777', '447700900123', 'Dev Patel'],
    ]);
  });

  it('yields nothing for a field other than messages', () => {
    expect(parse(metaFixture('account-update'))).toEqual([]);
  });
});

describe('Meta statuses', () => {
  it.each(['sent', 'delivered', 'read', 'failed'])('turns a %s receipt into a status item', (receipt) => {
    const items = parse(metaFixture(`status-${receipt}`));
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ kind: 'status', source: 'whatsapp', receipt, recipient: '16505551234' });
    expect((items[0] as StatusItem).messageId).toMatch(/^wamid\./);
  });

  it('keeps conversation, pricing and errors in the receipt payload', () => {
    const [sent] = parse(metaFixture('status-sent')) as StatusItem[];
    expect(sent!.payload).toMatchObject({ conversation: { origin: { type: 'service' } }, pricing: { pricing_model: 'PMP' } });
    const [failed] = parse(metaFixture('status-failed')) as StatusItem[];
    expect(failed!.payload).toMatchObject({ errors: [{ code: 131047 }] });
    expect(failed!.timestampSeconds).toBe(1767225605);
  });

  it('marks a receipt whose signed timestamp is outside the replay window, as a message would be refused', () => {
    const [fresh] = parse(metaFixture('status-read')) as StatusItem[];
    expect(fresh!.outsideReplayWindow).toBeUndefined();
    for (const offset of [-REPLAY_WINDOW_SECONDS - 60, 3600]) {
      const body = metaFixtureJson('status-read');
      body.entry[0].changes[0].value.statuses[0].timestamp = String(Math.floor(RECEIVED_AT_MS / 1000) + offset);
      expect([offset, (parse(Buffer.from(JSON.stringify(body)))[0] as StatusItem).outsideReplayWindow]).toEqual([offset, true]);
    }
  });

  it('falls back to the recipient user_id when there is no phone number', () => {
    const body = metaFixtureJson('status-read');
    delete body.entry[0].changes[0].value.statuses[0].recipient_id;
    expect(parse(Buffer.from(JSON.stringify(body)))[0]).toMatchObject({ kind: 'status', recipient: 'US.13491208655302741918' });
  });
});

describe('Meta errors', () => {
  it('reads the errors of a change as provider errors, beside its messages, and never as items', () => {
    const body = metaEnvelope([
      {
        messages: [metaTextMessage({ id: 'wamid.with-errors', from: '16505551234', text: 'hi' })],
        errors: [
          { code: 131000, title: 'Something went wrong', error_data: { details: 'Message failed to send' } },
          { code: 368, message: 'Temporarily blocked for policies violations' },
          { title: 'no code at all' },
        ],
      },
    ]);
    const parsed = parseMetaWebhook(Buffer.from(JSON.stringify(body)), RECEIVED_AT_MS, REPLAY_WINDOW_SECONDS);
    expect(parsed.items).toHaveLength(1);
    expect(parsed.items[0]).toMatchObject({ kind: 'message', messageId: 'wamid.with-errors' });
    expect(parsed.providerErrors).toEqual([
      { code: 131000, title: 'Something went wrong', details: 'Message failed to send' },
      { code: 368, title: 'Temporarily blocked for policies violations', details: undefined },
      { code: 0, title: 'an error entry without a numeric code' },
    ]);
  });
});
