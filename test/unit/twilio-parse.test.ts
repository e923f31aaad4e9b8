import type { MalformedItem, MessageItem } from '../../src/ledger/items';
import { parseTwilioForm } from '../../src/webhooks/twilio';
import { RECEIVED_AT_MS, twilioFixture } from './fixtures';

const CUSTOMER = 'whatsapp:+5521987654321';
const BUSINESS = 'whatsapp:+14155238886';

function parse(raw: Buffer | string) {
  return parseTwilioForm(Buffer.isBuffer(raw) ? raw : Buffer.from(raw), RECEIVED_AT_MS);
}

function onlyMessage(raw: Buffer | string): MessageItem {
  const items = parse(raw);
  expect(items).toHaveLength(1);
  expect(items[0]!.kind).toBe('message');
  return items[0] as MessageItem;
}

/** The fixture with one param removed, the rest byte for byte as sent. */
function without(fixture: string, name: string): string {
  return twilioFixture(fixture).toString('utf8').split('&').filter((pair) => !pair.startsWith(`${name}=`)).join('&');
}

describe('Twilio inbound messages', () => {
  it.each([
    ['inbound-text', 'text', 'SM1a2b3c4d5e6f708192a3b4c5d6e7f801'],
    ['inbound-media', 'media', 'SM1a2b3c4d5e6f708192a3b4c5d6e7f802'],
    ['inbound-location', 'location', 'SM1a2b3c4d5e6f708192a3b4c5d6e7f803'],
    ['inbound-button', 'button', 'SM1a2b3c4d5e6f708192a3b4c5d6e7f804'],
  ])('parses %s into a queued %s message', (fixture, type, sid) => {
    const item = onlyMessage(twilioFixture(fixture));
    expect(item).toMatchObject({ source: 'twilio', messageId: sid, sender: CUSTOMER, senderKey: CUSTOMER, business: BUSINESS, type });
    expect(item).toMatchObject({ verdict: 'queued', timestampSeconds: null });
    expect(item.payload).toMatchObject({ messageId: sid, from: CUSTOMER, contactName: 'Maria Souza', type });
  });

  it('decodes the body text, "+" and emoji included', () => {
    const item = onlyMessage(twilioFixture('inbound-text'));
    expect(item.payload.content).toMatchObject({ Body: '2x margherita + 1 coke, por favor 🍕', NumMedia: '0' });
  });

  it('keeps the media URL and type for the worker', () => {
    const item = onlyMessage(twilioFixture('inbound-media'));
    expect(item.payload.content).toMatchObject({ NumMedia: '1', MediaContentType0: 'image/jpeg', MediaUrl0: expect.stringContaining('/Media/ME') });
  });

  it('keeps the coordinates of a location', () => {
    const item = onlyMessage(twilioFixture('inbound-location'));
    expect(item.payload.content).toMatchObject({ Latitude: '-22.9068467', Longitude: '-43.1728965', Label: 'Pickup' });
  });

  it('keeps the payload of a button reply', () => {
    expect(onlyMessage(twilioFixture('inbound-button')).payload.content).toMatchObject({ ButtonPayload: 'confirm:order-42' });
  });

  it('accepts params it does not know', () => {
    const raw = twilioFixture('inbound-text').toString('utf8') + '&ChannelMetadata=%7B%22type%22%3A%22whatsapp%22%7D';
    expect(onlyMessage(raw).payload.content).toMatchObject({ ChannelMetadata: '{"type":"whatsapp"}' });
  });
});

describe('Twilio status callbacks', () => {
  it.each(['sent', 'delivered', 'read', 'failed', 'undelivered'])('turns a %s callback into a status item', (receipt) => {
    const items = parse(twilioFixture(`status-${receipt}`));
    expect(items).toEqual([
      expect.objectContaining({ kind: 'status', source: 'twilio', messageId: 'SMf0e1d2c3b4a5968778695a4b3c2d1e0f', receipt, recipient: CUSTOMER }),
    ]);
  });

  it('keeps the error code of a failed delivery', () => {
    expect(parse(twilioFixture('status-failed'))[0]).toMatchObject({ payload: { ErrorCode: '63016' } });
  });

  it('records a status callback without a MessageSid as malformed', () => {
    expect(parse(without('status-read', 'MessageSid'))[0]).toMatchObject({ kind: 'malformed', messageId: expect.stringMatching(/^malformed:/) });
  });
});

describe('Twilio malformed forms', () => {
  it('records an inbound form without a MessageSid as malformed, keyed by its bytes', () => {
    const raw = without('inbound-text', 'MessageSid');
    const [item] = parse(raw) as MalformedItem[];
    expect(item).toMatchObject({ kind: 'malformed', source: 'twilio', sender: CUSTOMER });
    expect(item!.messageId).toMatch(/^malformed:[0-9a-f]{40}$/);
    expect((parse(raw)[0] as MalformedItem).messageId).toBe(item!.messageId);
    expect(item!.reason).toContain('MessageSid');
  });

  it('records an inbound form without a From as malformed under its MessageSid', () => {
    const [item] = parse(without('inbound-text', 'From')) as MalformedItem[];
    expect(item).toMatchObject({ kind: 'malformed', messageId: 'SM1a2b3c4d5e6f708192a3b4c5d6e7f801' });
    expect(item!.reason).toContain('From');
  });

  it('never puts input values in the reason', () => {
    const raw = without('inbound-text', 'From').replace('NumMedia=0', 'NumMedia=five');
    const { reason } = parse(raw)[0] as MalformedItem;
    expect(reason).toContain('NumMedia');
    expect(reason).not.toMatch(/five|margherita|5521987654321/);
  });

  it('records an empty body as malformed', () => {
    expect(parse('')[0]).toMatchObject({ kind: 'malformed' });
  });
});

/** A fixture with one param's pair replaced by these pairs, the rest byte for byte as sent. */
function replacing(fixture: string, name: string, pairs: string[]): string {
  return twilioFixture(fixture).toString('utf8').split('&').flatMap((pair) => (pair.startsWith(`${name}=`) ? pairs : [pair])).join('&');
}

describe('Twilio forms split anew from a genuine one\'s signed bytes', () => {
  it('takes a genuine reply, whose OriginalRepliedMessageSid names the message it answers', () => {
    const raw = twilioFixture('inbound-button').toString('utf8');
    expect(raw).toContain('OriginalRepliedMessageSid=SM');
    expect(onlyMessage(raw)).toMatchObject({ kind: 'message', messageId: 'SM1a2b3c4d5e6f708192a3b4c5d6e7f804' });
  });


  it.each([
    ['a MessageSid that swallowed the next parameter', replacing('inbound-text', 'MessageSid', ['MessageSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f801MessageTypetext']), 'MessageSid is not a Twilio message id'],
    ['an SmsSid other than the MessageSid', replacing('inbound-text', 'SmsSid', ['SmsSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f899']), 'SmsSid differs from MessageSid'],
    ['a status name cut short', replacing('status-read', 'MessageStatus', ['MessageSt=atusread']), 'parameter MessageSt is a piece of MessageStatus'],
    ['a status name run on into its value', replacing('status-read', 'SmsStatus', ['SmsStatusr=ead']), 'parameter SmsStatusr is a piece of SmsStatus'],
    ['two statuses that differ', replacing('status-read', 'SmsStatus', ['SmsStatus=delivered']), 'MessageStatus and SmsStatus differ'],
    ['a receipt\'s SmsStatus without its MessageStatus', without('status-read', 'MessageStatus'), 'a receipt (SmsStatus) without MessageStatus'],
    // The genuine form's MessageSid and id, run into a parameter's value, and a new MessageSid cut
    // from the Body the customer wrote: the same signed string, a new message.
    [
      'a new MessageSid, the genuine one run into another parameter\'s value',
      twilioFixture('inbound-text')
        .toString('utf8')
        .replace(/(^|&)(SmsMessageSid|SmsSid)=[^&]*/g, '')
        .replace('&MessageSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f801', '&MessageSid=SM00000000000000000000000000000bad')
        .replace('WaId=5521987654321', 'WaId=15550009999MessageSidSM1a2b3c4d5e6f708192a3b4c5d6e7f801'),
      'a message id other than MessageSid',
    ],
    ['a parameter given twice', `${twilioFixture('inbound-text').toString('utf8')}&From=whatsapp%3A%2B15550009999`, 'parameter From appears more than once'],
  ])('keeps %s as malformed, under its bytes', (_what, raw, reason) => {
    const [item] = parse(raw) as MalformedItem[];
    expect(item).toMatchObject({ kind: 'malformed', messageId: expect.stringMatching(/^malformed:/) });
    expect(item!.reason).toContain(reason);
  });
});
