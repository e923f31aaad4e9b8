import { importCatalog } from '../../src/orders/catalog-import';
import { countStuckMessages, requeueStuckMessages, stuckAfterMs } from '../../src/ledger/stuck';
import { metaEnvelope, metaContact } from '../../src/webhooks/samples';
import { PUBLIC_BASE_URL, startPipeline, TWILIO_SID, waitUntilOutOfOutbox, type Pipeline } from '../support/pipeline';
import { postMeta, postMetaText, postTwilio, twilioText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';
import { ADMIN_TOKEN } from '../support/ingest';

let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline();
  await pipeline.startWorker();
});

afterAll(async () => {
  await pipeline.stop();
});

const messageStatus = async (id: string) =>
  (await pipeline.db.sql<{ status: string }[]>`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

/** wagate_reply_receipts_total for a source and status, read from the in-process ingest's registry. */
async function replyReceipts(labels: { source: string; status: string }): Promise<number> {
  const values = (await pipeline.ingest.metrics.replyReceipts.get()).values;
  return values.find((value) => value.labels.source === labels.source && value.labels.status === labels.status)?.value ?? 0;
}

async function settled(id: string): Promise<string> {
  return waitFor(`message ${id} to be processed`, async () => {
    const status = await messageStatus(id);
    return status === 'processed' || status === 'unmatched' || status === 'dead' ? status : null;
  });
}

describe('order pipeline', () => {
  it('turns free text into one order and one confirmation through the Graph API', async () => {
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550100001', text: '2x margherita, one coke' });
    expect(await settled(id)).toBe('processed');
    const [order] = await pipeline.db.sql`SELECT id, total::text, currency, status, phone_number FROM orders WHERE message_id = ${id}`;
    expect(order).toMatchObject({ total: '19.50', currency: 'EUR', status: 'open', phone_number: '15550100001' });
    const items = await pipeline.db.sql`SELECT sku, quantity, unit_price::text FROM order_items WHERE order_id = ${order!.id} ORDER BY line`;
    expect(items).toEqual([
      { sku: 'PIZ-MARG', quantity: 2, unit_price: '8.50' },
      { sku: 'COKE', quantity: 1, unit_price: '2.50' },
    ]);
    const calls = pipeline.fake.calls().filter((c) => (c.body as { to?: string }).to === '15550100001');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.path).toBe('/v25.0/106540352242922/messages');
    expect((calls[0]!.body as { text: { body: string } }).text.body).toContain(`Order #${order!.id}`);
    const [outbound] = await pipeline.db.sql`SELECT status, provider_message_id, kind FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(outbound).toMatchObject({ status: 'sent', kind: 'order_confirmation', provider_message_id: calls[0]!.providerMessageId });
  });

  it('queues and answers a message whose id is too long for AMQP\'s message-id, instead of leaving it in the outbox', async () => {
    // 256 characters, the longest id the schema takes: "whatsapp:" and it pass AMQP's 255 bytes.
    const id = uniqueWamid().padEnd(256, 'x');
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550100041', text: 'one coke' });
    expect(await settled(id)).toBe('processed');
    expect(await pipeline.db.sql`SELECT sku FROM order_items JOIN orders ON orders.id = order_items.order_id WHERE orders.message_id = ${id}`).toEqual([{ sku: 'COKE' }]);
    expect(pipeline.fake.calls().filter((c) => (c.body as { to?: string }).to === '15550100041')).toHaveLength(1);
  });

  it('keeps a product whose name has "and" in it whole: "2 fish and chips and a coke"', async () => {
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550100011', text: '2 fish and chips and a coke' });
    expect(await settled(id)).toBe('processed');
    const [order] = await pipeline.db.sql`SELECT id, total::text FROM orders WHERE message_id = ${id}`;
    expect(order).toMatchObject({ total: '24.50' });
    const items = await pipeline.db.sql`SELECT sku, quantity FROM order_items WHERE order_id = ${order!.id} ORDER BY line`;
    expect(items).toEqual([
      { sku: 'FISH-CHIPS', quantity: 2 },
      { sku: 'COKE', quantity: 1 },
    ]);
  });

  it('matches a native catalog cart by sku exactly', async () => {
    const id = uniqueWamid();
    const body = metaEnvelope([
      {
        contacts: [metaContact({ from: '15550100002' })],
        messages: [
          {
            from: '15550100002',
            id,
            timestamp: String(Math.floor(Date.now() / 1000)),
            type: 'order',
            order: { catalog_id: 'cat1', product_items: [{ product_retailer_id: 'PIZ-PEPP', quantity: 3, item_price: 9.5, currency: 'EUR' }] },
          },
        ],
      },
    ]);
    expect((await postMeta(pipeline.ingest.baseUrl, body)).status).toBe(200);
    expect(await settled(id)).toBe('processed');
    const [order] = await pipeline.db.sql`SELECT total::text FROM orders WHERE message_id = ${id}`;
    expect(order!.total).toBe('28.50');
  });

  it.each([
    ['a price', { item_price: 8, currency: 'EUR' }],
    ['a currency', { item_price: 9.5, currency: 'USD' }],
    // Rounded to cents it was 9.50, the catalog's: its third decimal differs all the same.
    ['a price, to a third decimal,', { item_price: 9.496, currency: 'EUR' }],
  ])('places no order from a cart that showed %s other than the catalog\'s, and says what it costs', async (_what, shown) => {
    const id = uniqueWamid();
    const from = '15550100023';
    const body = metaEnvelope([
      {
        contacts: [metaContact({ from })],
        messages: [{ from, id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'order', order: { product_items: [{ product_retailer_id: 'PIZ-PEPP', quantity: 3, ...shown }] } }],
      },
    ]);
    expect((await postMeta(pipeline.ingest.baseUrl, body)).status).toBe(200);
    expect(await settled(id)).toBe('unmatched');
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).toEqual([]);
    const [reply] = await pipeline.db.sql`SELECT kind, body FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(reply!.kind).toBe('clarification');
    expect(reply!.body).toContain('"Pizza Pepperoni" costs EUR 9.50 now, not the price your cart showed.');
  });

  /** A cart of these lines, from `from`, settled: its message's id. */
  async function cartFrom(from: string, items: { product_retailer_id: string; quantity: number }[]): Promise<string> {
    const id = uniqueWamid();
    const productItems = items.map((item) => ({ ...item, item_price: 9.5, currency: 'EUR' }));
    const body = metaEnvelope([
      { contacts: [metaContact({ from })], messages: [{ from, id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'order', order: { product_items: productItems } }] },
    ]);
    expect((await postMeta(pipeline.ingest.baseUrl, body)).status).toBe(200);
    return id;
  }

  it('adds up a product a cart names twice, and asks when the sum passes the per-product limit', async () => {
    const twice = await cartFrom('15550107001', [{ product_retailer_id: 'PIZ-PEPP', quantity: 2 }, { product_retailer_id: 'PIZ-PEPP', quantity: 1 }]);
    expect(await settled(twice)).toBe('processed');
    expect(await pipeline.db.sql`SELECT i.quantity, o.total::text FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.message_id = ${twice}`)
      .toEqual([{ quantity: 3, total: '28.50' }]);
    const over = await cartFrom('15550107002', [{ product_retailer_id: 'PIZ-PEPP', quantity: 60 }, { product_retailer_id: 'PIZ-PEPP', quantity: 60 }]);
    expect(await settled(over)).toBe('unmatched');
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${over}`).toEqual([]);
  });

  it('asks about a cart of more products than a confirmation can list with its total, and places nothing', async () => {
    const skus = Array.from({ length: 21 }, (_, n) => `CART-${n}`);
    await importCatalog(pipeline.db.sql, `sku,name,price,currency,aliases\n${skus.map((sku, n) => `${sku},Cart product number ${n},9.50,EUR,`).join('\n')}\n`);
    const id = await cartFrom('15550107003', skus.map((sku) => ({ product_retailer_id: sku, quantity: 1 })));
    expect(await settled(id)).toBe('unmatched');
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).toEqual([]);
    const [reply] = await pipeline.db.sql`SELECT body FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(reply!.body).toContain('please send at most 20 items');
  });

  it('answers a Twilio message through Twilio REST from the number that received it', async () => {
    const params = twilioText('1 cafe con leche', 'whatsapp:+15550100003');
    const sid = params.find(([name]) => name === 'MessageSid')![1];
    expect((await postTwilio(pipeline.ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    expect(await settled(sid)).toBe('processed');
    const call = pipeline.fake.calls().find((c) => c.provider === 'twilio' && (c.body as Record<string, string>).To === 'whatsapp:+15550100003');
    expect(call).toBeDefined();
    expect(call!.body).toMatchObject({
      From: 'whatsapp:+14155238886',
      // Twilio posts the reply's receipts to our own webhook only when the send asks for them,
      // to a URL that names the reply and its attempt.
      StatusCallback: expect.stringMatching(new RegExp(`^${PUBLIC_BASE_URL}/api/v1/whatsapp-hardened/twilio/webhook\\?wagate_reply=wagate%3Areply%3A\\d+%3A[0-9a-f-]{36}$`)),
    });
    expect((call!.body as Record<string, string>).Body).toContain('Café con leche');
    const [order] = await pipeline.db.sql`SELECT total::text FROM orders WHERE message_id = ${sid}`;
    expect(order!.total).toBe('2.00');

    // Twilio's status callback for the reply moves it forward, as a Meta receipt would.
    const [reply] = await pipeline.db.sql`SELECT provider_message_id FROM outbound_messages WHERE inbound_message_id = ${sid}`;
    expect(reply!.provider_message_id).toBe(call!.providerMessageId);
    const callback = (status: string): [string, string][] => [
      ['MessageSid', reply!.provider_message_id],
      ['MessageStatus', status],
      ['To', 'whatsapp:+15550100003'],
      ['From', 'whatsapp:+14155238886'],
      ['AccountSid', TWILIO_SID],
    ];
    const receipts = (status: string) => replyReceipts({ source: 'twilio', status });
    const before = { delivered: await receipts('delivered'), sent: await receipts('sent') };
    expect((await postTwilio(pipeline.ingest.baseUrl, callback('delivered'), { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    expect((await postTwilio(pipeline.ingest.baseUrl, callback('sent'), { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    const [after] = await pipeline.db.sql`SELECT delivery_status FROM outbound_messages WHERE inbound_message_id = ${sid}`;
    expect(after!.delivery_status).toBe('delivered');
    // Each new receipt of wagate's own reply is counted by what it says; a copy is not.
    expect((await postTwilio(pipeline.ingest.baseUrl, callback('sent'), { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    expect({ delivered: await receipts('delivered'), sent: await receipts('sent') }).toEqual({ delivered: before.delivered + 1, sent: before.sent + 1 });
  });

  it('counts a failed receipt of a reply the provider had accepted, and none for a message that is not wagate\'s', async () => {
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550100033', text: '1 coke' });
    expect(await settled(id)).toBe('processed');
    const [reply] = await pipeline.db.sql`SELECT provider_message_id FROM outbound_messages WHERE inbound_message_id = ${id}`;
    const failed = () => replyReceipts({ source: 'whatsapp', status: 'failed' });
    const before = await failed();
    const receipt = (messageId: string) => metaEnvelope([{ statuses: [{
      id: messageId, status: 'failed', timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: '15550100033',
      errors: [{ code: 131047, title: 'Re-engagement message' }],
    }] }]);
    expect((await postMeta(pipeline.ingest.baseUrl, receipt(reply!.provider_message_id))).status).toBe(200);
    expect((await postMeta(pipeline.ingest.baseUrl, receipt('wamid.someone-elses-message'))).status).toBe(200);
    expect(await failed()).toBe(before + 1);
  });

  it('replies to a customer Meta knows only by their user id through `recipient`, as Meta documents, with no `to`', async () => {
    const id = uniqueWamid();
    const userId = 'BR.1502576394655899';
    await postMeta(pipeline.ingest.baseUrl, metaEnvelope([{
      contacts: [{ profile: { name: 'Maria', username: '@maria.lopez' }, user_id: userId }],
      messages: [{ from_user_id: userId, id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: '1 coke' } }],
    }]));
    expect(await settled(id)).toBe('processed');
    const [call] = pipeline.fake.calls().filter((c) => (c.body as { recipient?: string }).recipient === userId);
    expect(call?.body).not.toHaveProperty('to');
    expect(call?.status).toBe(200);
    const [reply] = await pipeline.db.sql`SELECT status, provider_message_id FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(reply).toEqual({ status: 'sent', provider_message_id: call!.providerMessageId });
  });

  it('matches a tapped list row or button whose id is a sku exactly', async () => {
    const list = uniqueWamid();
    const button = uniqueWamid();
    const tapped = (id: string, interactive: object) =>
      metaEnvelope([{ messages: [{ from: '15550100012', id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'interactive', interactive }] }]);
    await postMeta(pipeline.ingest.baseUrl, tapped(list, { type: 'list_reply', list_reply: { id: 'COKE', title: 'Coca-Cola' } }));
    await postMeta(pipeline.ingest.baseUrl, tapped(button, { type: 'button_reply', button_reply: { id: 'PIZ-MARG', title: 'Margherita' } }));
    expect(await settled(list)).toBe('processed');
    expect(await settled(button)).toBe('processed');
    const lines = await pipeline.db.sql`
      SELECT o.message_id, i.sku, i.quantity FROM orders o JOIN order_items i ON i.order_id = o.id
      WHERE o.message_id IN (${list}, ${button}) ORDER BY o.message_id = ${list} DESC`;
    expect([...lines]).toEqual([
      { message_id: list, sku: 'COKE', quantity: 1 },
      { message_id: button, sku: 'PIZ-MARG', quantity: 1 },
    ]);
  });

  it('orders from a tapped row whose id is no sku only by a title that is a product\'s name, and asks about one that is merely like it', async () => {
    const [named, like] = [uniqueWamid(), uniqueWamid()];
    const tapped = (id: string, title: string) =>
      metaEnvelope([{ messages: [{ from: '15550100026', id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'interactive', interactive: { type: 'list_reply', list_reply: { id: `row-${id}`, title } } }] }]);
    await postMeta(pipeline.ingest.baseUrl, tapped(named, 'Coca-Cola 🥤'));
    expect(await settled(named)).toBe('processed');
    await postMeta(pipeline.ingest.baseUrl, tapped(like, 'Margherita Pizza'));
    expect(await settled(like)).toBe('unmatched');
    const lines = await pipeline.db.sql`SELECT o.message_id, i.sku, i.quantity FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.message_id IN (${named}, ${like})`;
    expect([...lines]).toEqual([{ message_id: named, sku: 'COKE', quantity: 1 }]);
    const [reply] = await pipeline.db.sql`SELECT kind, body FROM outbound_messages WHERE inbound_message_id = ${like}`;
    expect(reply).toMatchObject({ kind: 'clarification', body: expect.stringContaining('"Margherita Pizza": did you mean Pizza Margherita?') });
  });

  it('orders nothing from a tapped row whose sku was switched off since, though its title names another product', async () => {
    const id = uniqueWamid();
    await pipeline.db.sql`INSERT INTO products (sku, name, price, currency, active) VALUES ('PIZ-MARG-2025', 'Margherita', 7.50, 'EUR', false)`;
    const body = metaEnvelope([
      {
        messages: [
          { from: '15550100025', id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'interactive', interactive: { type: 'list_reply', list_reply: { id: 'PIZ-MARG-2025', title: 'Margherita' } } },
        ],
      },
    ]);
    await postMeta(pipeline.ingest.baseUrl, body);
    expect(await settled(id)).toBe('unmatched');
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).toEqual([]);
    const [reply] = await pipeline.db.sql`SELECT kind, body FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(reply).toMatchObject({ kind: 'clarification', body: expect.stringContaining('We don\'t have anything like "Margherita".') });
  });

  it.each([
    ['thanks!', 'processed'],
    ['thank you very much 🙏', 'processed'],
    ['for delivery at 7 please', 'processed'],
    ['Hola!', 'processed'],
    ['good evening 😊', 'processed'],
    ['hi, thanks', 'processed'],
    ['hi, can I see the menu', 'unmatched'],
    ['one without cheese', 'unmatched'],
    ['sin cebolla', 'unmatched'],
    ['hay sin cebolla?', 'unmatched'],
    ['is there a way to make it without onions', 'unmatched'],
  ])('reads a cart\'s note "%s": an order is placed only when it asks nothing of the kitchen', async (note, status) => {
    const id = uniqueWamid();
    const from = '15550100091';
    const body = metaEnvelope([
      {
        contacts: [metaContact({ from })],
        messages: [{ from, id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'order',
          order: { text: note, product_items: [{ product_retailer_id: 'PIZ-PEPP', quantity: 1, item_price: 9.5, currency: 'EUR' }] } }],
      },
    ]);
    expect((await postMeta(pipeline.ingest.baseUrl, body)).status).toBe(200);
    expect(await settled(id)).toBe(status);
    const [reply] = await pipeline.db.sql`SELECT kind, body FROM outbound_messages WHERE inbound_message_id = ${id}`;
    if (status === 'processed') {
      expect(reply!.kind).toBe('order_confirmation');
      // Kept on the order for the shop, as the customer wrote it.
      expect(await pipeline.db.sql`SELECT note FROM orders WHERE message_id = ${id}`).toEqual([{ note }]);
      return;
    }
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).toEqual([]);
    expect(reply!.kind).toBe('clarification');
    expect(reply!.body).toContain(`"${note}": we cannot take a note with a cart order.`);
  });

  it('asks for a shorter cart note than free text may be, and keeps none of it', async () => {
    const id = uniqueWamid();
    const from = '15550100092';
    const note = `thanks ${'🙏 '.repeat(1000)}`.trim();
    const body = metaEnvelope([{ contacts: [metaContact({ from })], messages: [{ from, id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'order',
      order: { text: note, product_items: [{ product_retailer_id: 'PIZ-PEPP', quantity: 1, item_price: 9.5, currency: 'EUR' }] } }] }]);
    expect((await postMeta(pipeline.ingest.baseUrl, body)).status).toBe(200);
    expect(await settled(id)).toBe('unmatched');
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).toEqual([]);
    const [reply] = await pipeline.db.sql<{ kind: string; body: string }[]>`SELECT kind, body FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(reply!.kind).toBe('clarification');
    expect(reply!.body).toContain('too long for us to read in full');
    expect(reply!.body).not.toContain('🙏');
  });

  it('creates no order for unknown or ambiguous text and replies with candidates', async () => {
    const unknown = uniqueWamid();
    const ambiguous = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: unknown, from: '15550100004', text: 'one quantum sandwich' });
    await postMetaText(pipeline.ingest.baseUrl, { id: ambiguous, from: '15550100005', text: '2 pizza' });
    expect(await settled(unknown)).toBe('unmatched');
    expect(await settled(ambiguous)).toBe('unmatched');
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id IN (${unknown}, ${ambiguous})`).toHaveLength(0);
    const reply = pipeline.fake.calls().find((c) => (c.body as { to?: string }).to === '15550100005');
    expect((reply!.body as { text: { body: string } }).text.body).toMatch(/Pizza Margherita or Pizza Pepperoni|Pizza Pepperoni or Pizza Margherita/);
  });

  it('answers a message type it cannot read, and counts it unmatched', async () => {
    const id = uniqueWamid();
    const body = metaEnvelope([
      { messages: [{ from: '15550100006', id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'image', image: { id: 'media-1', mime_type: 'image/jpeg' } }] },
    ]);
    await postMeta(pipeline.ingest.baseUrl, body);
    expect(await settled(id)).toBe('unmatched');
    const [outbound] = await pipeline.db.sql`SELECT kind, status FROM outbound_messages WHERE inbound_message_id = ${id}`;
    expect(outbound).toEqual({ kind: 'unsupported', status: 'sent' });
  });

  it('stays silent on a reaction, its removal and a change of number, and greets a new chat with the menu', async () => {
    const from = '15550100016';
    const now = String(Math.floor(Date.now() / 1000));
    const [liked, unliked, changed, welcome] = [uniqueWamid(), uniqueWamid(), uniqueWamid(), uniqueWamid()];
    const notices = [
      { from, id: liked, timestamp: now, type: 'reaction', reaction: { message_id: 'wamid.CONFIRMATION', emoji: '\u{1F44D}' } },
      { from, id: unliked, timestamp: now, type: 'reaction', reaction: { message_id: 'wamid.CONFIRMATION' } },
      { from, id: changed, timestamp: now, type: 'system', system: { body: `User changed from ${from} to 15550100017`, wa_id: '15550100017', type: 'user_changed_number' } },
    ];
    await postMeta(pipeline.ingest.baseUrl, metaEnvelope([{ messages: notices, contacts: [metaContact({ from })] }]));
    // The sender's messages are processed in arrival order, so once the welcome is answered the notices before it are done.
    await postMeta(pipeline.ingest.baseUrl, metaEnvelope([{ messages: [{ from, id: welcome, timestamp: now, type: 'request_welcome' }], contacts: [metaContact({ from })] }]));
    expect(await settled(welcome)).toBe('processed');
    for (const id of [liked, unliked, changed]) expect(await messageStatus(id)).toBe('processed');
    const replies = await pipeline.db.sql`SELECT inbound_message_id, kind FROM outbound_messages WHERE recipient = ${from}`;
    expect(replies).toEqual([{ inbound_message_id: welcome, kind: 'menu' }]);
    const calls = pipeline.fake.calls().filter((c) => (c.body as { to?: string }).to === from);
    expect(calls).toHaveLength(1);
    expect((calls[0]!.body as { text: { body: string } }).text.body).toContain('Our menu:');
  });

  it('stays silent on what is written in a WhatsApp group the business is in, an order as much as a greeting', async () => {
    const from = '15550100018';
    const now = String(Math.floor(Date.now() / 1000));
    const [inGroup, greeting, direct] = [uniqueWamid(), uniqueWamid(), uniqueWamid()];
    // As Meta's group messages webhook reference shows them: the participant in from, the group in group_id.
    const groupMessages = [
      { from, group_id: 'Y2FwaV9ncm91cDoxNTU1MDEwMDAxODoxMjAzNjMwMjk2NjAyNjQ4NDU', id: inGroup, timestamp: now, type: 'text', text: { body: '2 margherita' } },
      { from, group_id: 'Y2FwaV9ncm91cDoxNTU1MDEwMDAxODoxMjAzNjMwMjk2NjAyNjQ4NDU', id: greeting, timestamp: now, type: 'text', text: { body: 'hi all' } },
    ];
    await postMeta(pipeline.ingest.baseUrl, metaEnvelope([{ messages: groupMessages, contacts: [metaContact({ from })] }]));
    // The group's are recorded processed by the ingest; the direct one is answered as ever.
    await postMeta(pipeline.ingest.baseUrl, metaEnvelope([{ messages: [{ from, id: direct, timestamp: now, type: 'text', text: { body: '1 margherita' } }], contacts: [metaContact({ from })] }]));
    expect(await settled(direct)).toBe('processed');
    for (const id of [inGroup, greeting]) expect(await messageStatus(id)).toBe('processed');
    const orders = await pipeline.db.sql`SELECT message_id FROM orders WHERE message_id IN ${pipeline.db.sql([inGroup, greeting, direct])}`;
    expect(orders).toEqual([{ message_id: direct }]);
    const replies = await pipeline.db.sql`SELECT inbound_message_id, kind FROM outbound_messages WHERE recipient = ${from}`;
    expect(replies).toEqual([{ inbound_message_id: direct, kind: 'order_confirmation' }]);
    // Not counted against the writer's own limit: one request for the direct message alone.
    expect(await pipeline.db.sql`SELECT request_count FROM webhook_rate_limits WHERE webhook_source = 'whatsapp' AND phone_number = ${from}`).toEqual([{ request_count: 1 }]);
  });

  it('reports replies by send state in the admin stats', async () => {
    const response = await fetch(`${pipeline.ingest.baseUrl}/api/v1/whatsapp-hardened/stats?source=whatsapp`, {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const body = (await response.json()) as { replies: Record<string, number>; counts: Record<string, number>; deliveryStatus: Record<string, number> };
    expect(body.replies.sent).toBeGreaterThanOrEqual(4);
    expect(body.replies.unknown).toBe(0);
    const sent = Object.values(body.deliveryStatus).reduce((sum, n) => sum + n, 0);
    expect(sent).toBe(body.replies.sent);
    expect(body.counts.processed).toBeGreaterThanOrEqual(2);
    expect(body.counts.unmatched).toBeGreaterThanOrEqual(2);
  });

  it('cancels the sender’s latest open order and reports its status', async () => {
    const first = uniqueWamid();
    const second = uniqueWamid();
    const cancel = uniqueWamid();
    const status = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id: first, from: '15550100007', text: '1 coke' });
    expect(await settled(first)).toBe('processed');
    await postMetaText(pipeline.ingest.baseUrl, { id: second, from: '15550100007', text: '2 pepperoni' });
    expect(await settled(second)).toBe('processed');
    await postMetaText(pipeline.ingest.baseUrl, { id: cancel, from: '15550100007', text: 'cancel my order' });
    expect(await settled(cancel)).toBe('processed');
    const orders = await pipeline.db.sql`SELECT message_id, status FROM orders WHERE phone_number = '15550100007' ORDER BY id`;
    expect(orders).toEqual([
      { message_id: first, status: 'open' },
      { message_id: second, status: 'cancelled' },
    ]);
    await postMetaText(pipeline.ingest.baseUrl, { id: status, from: '15550100007', text: 'where is my order?' });
    expect(await settled(status)).toBe('processed');
    const [reply] = await pipeline.db.sql`SELECT kind, body FROM outbound_messages WHERE inbound_message_id = ${status}`;
    expect(reply!.kind).toBe('order_status');
    expect(reply!.body).toMatch(/is cancelled/);
  });

  it('answers no reply to "thanks 👍" after a confirmation: the message is processed with nothing sent', async () => {
    const from = '15550100024';
    const [placed, thanks] = [uniqueWamid(), uniqueWamid()];
    await postMetaText(pipeline.ingest.baseUrl, { id: placed, from, text: '1 coke' });
    expect(await settled(placed)).toBe('processed');
    await postMetaText(pipeline.ingest.baseUrl, { id: thanks, from, text: 'thanks 👍' });
    expect(await settled(thanks)).toBe('processed');
    expect(await pipeline.db.sql`SELECT 1 FROM outbound_messages WHERE inbound_message_id = ${thanks}`).toEqual([]);
    expect(pipeline.fake.calls().filter((c) => (c.body as { to?: string }).to === from)).toHaveLength(1);
  });

  it('reports the newest order by number, not by its digits as text (order 10000000 is newer than 9999999)', async () => {
    const from = '15550100026';
    const [placed, status] = [uniqueWamid(), uniqueWamid()];
    await postMetaText(pipeline.ingest.baseUrl, { id: placed, from, text: '1 coke' });
    expect(await settled(placed)).toBe('processed');
    const [order] = await pipeline.db.sql<{ sender_key: string }[]>`SELECT sender_key FROM orders WHERE message_id = ${placed}`;
    // Orders whose messages cleanup has removed are ordered by their numbers alone (orders with
    // their messages on file, by those messages' arrival): the sender's orders' messages go too.
    await pipeline.db.sql`DELETE FROM webhook_messages WHERE message_id IN (SELECT message_id FROM orders WHERE sender_key = ${order!.sender_key})`;
    // Ids far above the sequence, one digit apart in length.
    await pipeline.db.sql`
      INSERT INTO orders (id, webhook_source, message_id, phone_number, sender_key, total, currency, status) OVERRIDING SYSTEM VALUE
      VALUES (9999999, 'whatsapp', ${uniqueWamid()}, ${from}, ${order!.sender_key}, 2.50, 'EUR', 'open'),
             (10000000, 'whatsapp', ${uniqueWamid()}, ${from}, ${order!.sender_key}, 5.00, 'EUR', 'cancelled')`;
    await postMetaText(pipeline.ingest.baseUrl, { id: status, from, text: 'where is my order?' });
    expect(await settled(status)).toBe('processed');
    const [reply] = await pipeline.db.sql`SELECT kind, order_id::text, body FROM outbound_messages WHERE inbound_message_id = ${status}`;
    expect(reply).toMatchObject({ kind: 'order_status', order_id: '10000000' });
    expect(reply!.body).toMatch(/#10000000 .*cancelled/);
  });

  it('a second "cancel" cancels nothing more: only the newest order can be cancelled', async () => {
    const from = '15550100021';
    const [first, second, cancel, again] = [uniqueWamid(), uniqueWamid(), uniqueWamid(), uniqueWamid()];
    for (const [id, text] of [[first, '1 coke'], [second, '2 pepperoni'], [cancel, 'cancel'], [again, 'cancel']] as const) {
      await postMetaText(pipeline.ingest.baseUrl, { id, from, text });
      expect(await settled(id)).toBe('processed');
    }
    expect(await pipeline.db.sql`SELECT message_id, status FROM orders WHERE phone_number = ${from} ORDER BY id`).toEqual([
      { message_id: first, status: 'open' },
      { message_id: second, status: 'cancelled' },
    ]);
    const [reply] = await pipeline.db.sql`SELECT kind, order_id, body FROM outbound_messages WHERE inbound_message_id = ${again}`;
    const [newest] = await pipeline.db.sql<{ id: string }[]>`SELECT id::text FROM orders WHERE message_id = ${second}`;
    // True to what happened: not "no open order", since the first one still is.
    expect(reply).toEqual({ kind: 'cancel_confirmation', order_id: null, body: `Your latest order #${newest!.id} is cancelled: there is nothing to cancel.` });
  });

  it('a "cancel" after ORDER_CANCEL_WINDOW_HOURS leaves the order as it is', async () => {
    const from = '15550100022';
    const [placed, cancel] = [uniqueWamid(), uniqueWamid()];
    await postMetaText(pipeline.ingest.baseUrl, { id: placed, from, text: '1 coke' });
    expect(await settled(placed)).toBe('processed');
    // Placed just over the default window of 24 hours ago.
    await pipeline.db.sql`UPDATE orders SET created_at = now() - interval '24 hours 1 minute' WHERE message_id = ${placed}`;
    await postMetaText(pipeline.ingest.baseUrl, { id: cancel, from, text: 'cancel my order' });
    expect(await settled(cancel)).toBe('processed');
    expect(await pipeline.db.sql`SELECT status FROM orders WHERE message_id = ${placed}`).toEqual([{ status: 'open' }]);
    const [reply] = await pipeline.db.sql`SELECT kind, order_id, body FROM outbound_messages WHERE inbound_message_id = ${cancel}`;
    const [order] = await pipeline.db.sql<{ id: string }[]>`SELECT id::text FROM orders WHERE message_id = ${placed}`;
    expect(reply).toEqual({ kind: 'cancel_confirmation', order_id: null, body: `Your order #${order!.id} can no longer be cancelled by message. Please contact us if something is wrong with it.` });
  });

  it('finds a message whose queue copy was lost and puts it back, without a second order or reply', async () => {
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550100020', text: '1 coke' });
    expect(await settled(id)).toBe('processed');
    const callsBefore = pipeline.fake.calls().length;
    await waitUntilOutOfOutbox(pipeline.db, id);
    // As if the broker had dropped the message on its way between queues, long ago.
    await pipeline.db.sql`UPDATE webhook_messages SET status = 'queued', updated_at = now() - interval '3 hours' WHERE message_id = ${id}`;
    const stuckAfter = stuckAfterMs(pipeline.ingest.config.RETRY_DELAYS_MS);
    expect(await countStuckMessages(pipeline.db.sql, stuckAfter)).toBe(1);

    expect(await requeueStuckMessages(pipeline.db.sql, stuckAfter)).toBe(1);
    await waitFor('the requeued message to finish again', async () =>
      (await pipeline.db.sql`SELECT status, updated_at > now() - interval '1 minute' AS fresh FROM webhook_messages WHERE message_id = ${id}`)[0]
        ?.status === 'processed');
    expect(await countStuckMessages(pipeline.db.sql, stuckAfter)).toBe(0);
    expect(await pipeline.db.sql`SELECT 1 FROM orders WHERE message_id = ${id}`).toHaveLength(1);
    expect(pipeline.fake.calls()).toHaveLength(callsBefore);
  });
  it('records an order whose total needs more digits than one price (two of the dearest price there may be)', async () => {
    await importCatalog(pipeline.db.sql, 'sku,name,price,currency,aliases\nGOLD,Golden truffle hamper,9999999999.99,EUR,\n');
    const id = uniqueWamid();
    await postMetaText(pipeline.ingest.baseUrl, { id, from: '15550100032', text: '2 golden truffle hamper' });
    expect(await settled(id)).toBe('processed');
    const [order] = await pipeline.db.sql`SELECT total::text FROM orders WHERE message_id = ${id}`;
    expect(order!.total).toBe('19999999999.98');
  });

  // Last in the file: it adds twenty products to the shared catalogue.
  it('sends a menu of twenty long product names through Twilio, which refuses a Body over 1,600 characters', async () => {
    const rows = Array.from({ length: 20 }, (_, n) => `LONG-${n},Artisan wood-fired sourdough pizza with heirloom tomatoes and basil ${String.fromCharCode(97 + n)},12.50,EUR,`);
    await importCatalog(pipeline.db.sql, `sku,name,price,currency,aliases\n${rows.join('\n')}\n`);
    const params = twilioText('menu', 'whatsapp:+15550100031');
    const sid = params.find(([name]) => name === 'MessageSid')![1];
    expect((await postTwilio(pipeline.ingest.baseUrl, params, { publicBaseUrl: PUBLIC_BASE_URL })).status).toBe(200);
    expect(await settled(sid)).toBe('processed');
    const call = pipeline.fake.calls().find((c) => c.provider === 'twilio' && (c.body as Record<string, string>).To === 'whatsapp:+15550100031');
    expect(call?.status).toBe(201);
    const body = (call!.body as Record<string, string>).Body!;
    expect(body.length).toBeLessThanOrEqual(1600);
    // Every product still has its line, its name shortened.
    expect(body.match(/12\.50/g)).toHaveLength(20);
  });
});
