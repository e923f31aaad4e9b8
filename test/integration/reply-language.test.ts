import { runCleanup } from '../../src/ledger/retention';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ REPLY_LANGUAGE: 'en' });
  await pipeline.startWorker();
});

afterAll(async () => {
  await pipeline.stop();
});

/** Sends a text and returns the reply the worker recorded for it, once it is sent. */
async function replyTo(from: string, text: string): Promise<string> {
  const id = uniqueWamid();
  await postMetaText(pipeline.ingest.baseUrl, { id, from, text });
  const row = await waitFor(`the reply to "${text}"`, async () =>
    (await pipeline.db.sql<{ body: string; status: string }[]>`SELECT body, status FROM outbound_messages WHERE inbound_message_id = ${id}`).find(
      (reply) => reply.status !== 'pending' && reply.status !== 'sending',
    ), 30000);
  expect(row).toMatchObject({ status: 'sent' });
  return row.body;
}

describe('replies in the customer\'s language', () => {
  it('confirms a Spanish order in Spanish, and answers the customer\'s next short message in Spanish too', async () => {
    expect(await replyTo('15550700001', 'hola, quiero dos margherita y una coca cola')).toMatch(
      /^¡Gracias, Sample Customer! Pedido #\d+: 2 × Pizza Margherita \(EUR 8\.50\), 1 × Coca-Cola \(EUR 2\.50\)\. Total EUR 19\.50\. ¿No es lo que querías\? Responde CANCELAR para cancelarlo y vuelve a enviar tu pedido\.$/,
    );
    // "2 coke" carries no word of any language: the customer's last one is remembered.
    expect(await replyTo('15550700001', '2 coke')).toMatch(/^¡Gracias, Sample Customer! Pedido #\d+: 2 × Coca-Cola/);
    const [remembered] = await pipeline.db.sql`SELECT language FROM customer_languages WHERE sender_key = '15550700001'`;
    expect(remembered).toEqual({ language: 'es' });
  });

  it('answers status and cancel requests in German and the menu in Portuguese', async () => {
    await replyTo('15550700002', 'hallo, ich möchte eine Pizza Margherita bitte');
    expect(await replyTo('15550700002', 'wo ist meine Bestellung')).toMatch(/^Deine Bestellung #\d+ \(EUR 8\.50\) ist offen\.$/);
    expect(await replyTo('15550700002', 'bitte stornieren')).toMatch(/^Deine Bestellung #\d+ ist storniert\.$/);
    expect(await replyTo('15550700003', 'oi, o cardápio por favor')).toMatch(/^O nosso cardápio:\n• /);
  });

  it('keeps the language of a customer who goes on writing, however long ago it was last told, and lets cleanup forget a silent one\'s', async () => {
    await replyTo('15550700025', 'hola, quiero una coca cola');
    await replyTo('15550700026', 'hola, quiero una coca cola');
    // Both told their language 40 days ago; one of them writes again, in no language of its own.
    await pipeline.db.sql`UPDATE customer_languages SET updated_at = now() - interval '40 days' WHERE sender_key IN ('15550700025', '15550700026')`;
    expect(await replyTo('15550700025', '2 coke')).toMatch(/^¡Gracias, Sample Customer! Pedido #\d+: 2 × Coca-Cola/);
    const report = await runCleanup(pipeline.db.sql, pipeline.ingest.config, { days: 30, personalDataDays: 7, orderDays: 365 });
    expect(report.customer_languages).toBe(1);
    const kept = await pipeline.db.sql`SELECT sender_key FROM customer_languages WHERE sender_key IN ('15550700025', '15550700026')`;
    expect(kept).toEqual([{ sender_key: '15550700025' }]);
  });

  it('falls back to REPLY_LANGUAGE for a new customer whose message says nothing of its language', async () => {
    expect(await replyTo('15550700004', '1 coke')).toMatch(/^Thanks Sample Customer! Order #\d+: 1 × Coca-Cola/);
  });

  it('suggests no far-fetched product: says so and offers the menu', async () => {
    const reply = await replyTo('15550700005', '1 fanta');
    expect(reply).toBe('Sorry, we couldn\'t place your order yet. We don\'t have anything like "fanta". Reply MENU to see everything we offer.');
  });
});
