import { importCatalog } from '../../src/orders/catalog-import';
import { decide } from '../../src/orders/decide';
import type { Decision } from '../../src/orders/decision';
import { loadReplyCatalogues, repliesIn } from '../../src/orders/replies';

const replies = repliesIn(loadReplyCatalogues().en);
import { createTestDatabase, type TestDatabase } from '../support/database';
import { cartOf, DEFAULT_MATCH, textMessage } from '../support/decide';

// The four-product shop the order parser was designed against.
const CATALOG = `sku,name,price,currency,aliases
PZ-MARG,Pizza Margherita,8.50,EUR,margherita
PZ-PEPP,Pizza Pepperoni,9.50,EUR,pepperoni
DR-COLA,Coca-Cola,2.50,EUR,coke|cola|coca
DS-TIRA,Tiramisu,4.00,EUR,
`;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await importCatalog(db.sql, CATALOG);
});

afterAll(async () => {
  await db.drop();
});

async function cartIn(body: string) {
  return cartOf(db.sql, body);
}

describe('deciding free text against a real catalog', () => {
  it.each([
    ["I don't want coke, just 2 margherita", { 'PZ-MARG': 2 }],
    ['2margherita', { 'PZ-MARG': 2 }],
    ['a dozen margheritas and half a dozen cokes', { 'PZ-MARG': 12, 'DR-COLA': 6 }],
    ['Could I order 3 margheritas please? Thanks', { 'PZ-MARG': 3 }],
    ['2 coke 2 margherita', { 'DR-COLA': 2, 'PZ-MARG': 2 }],
    ['0 coke, 1 tiramisu', { 'DS-TIRA': 1 }],
    ['Keine Cola, nur eine Pepperoni 🍕', { 'PZ-PEPP': 1 }],
  ])('orders exactly what "%s" asks for', async (body, cart) => {
    expect(await cartIn(body)).toEqual(cart);
  });

  it.each([
    '2 margherita without onions', // a change wagate cannot record
    '1 coke no ice',
    'margherita or pepperoni',
    '2 or 3 margheritas',
    'half a margherita',
    'pepsi x2', // "pepsi" is not explained by "pepperoni"
    '2 large margheritas',
    'thre margheritas',
    '1 margherita, 2 margherita', // a correction or a sum: ask
    'no coke, 1 coke',
    '2 margherita 1 lasagna',
    'I want 100 cokes',
    '2 Margherita und noch eine', // "one more"
    'can i get 2 margherita and a coke? actually no coke',
    '#2 margherita', // an item number on some menu
    'margherita 2 pepperoni', // whose is the 2?
  ])('asks instead of ordering for "%s"', async (body) => {
    expect(await cartIn(body)).toBe('clarify');
  });

  it.each([
    ["please don't cancel my order", 'cancel'],
    ['no cancelar', 'cancel'],
    ['2 margherita, cancel the coke', 'cancel'],
    ['-1 coke', 'quantity'],
    ['margherita for 2', 'quantity'],
    [`${'2 margherita, '.repeat(80)}1 coke`, 'too_long'],
  ])('cancels nothing and orders nothing for "%s", asking instead (%s)', async (body, reason) => {
    const decision = await decide(db.sql, textMessage(body), DEFAULT_MATCH);
    expect(decision.kind).toBe('clarify');
    expect((decision as Extract<Decision, { kind: 'clarify' }>).problems.map((problem) => problem.reason)).toContain(reason);
  });

  it('still cancels on a plain cancel', async () => {
    for (const body of ['cancel', 'please cancel my order', 'cancelar pedido', 'bitte stornieren']) expect([body, await cartIn(body)]).toEqual([body, 'cancel']);
  });

  it('names the closest product when a word is not explained', async () => {
    const decision = await decide(db.sql, textMessage('thre margheritas'), DEFAULT_MATCH);
    expect(decision).toMatchObject({ kind: 'clarify', problems: [{ phrase: 'thre margheritas', reason: 'unknown', candidates: [{ sku: 'PZ-MARG' }] }] });
    expect(replies.clarification((decision as Extract<Decision, { kind: 'clarify' }>).problems)).toContain('did you mean Pizza Margherita?');
  });

  it('places no order beside a question, and says why instead of sending the menu', async () => {
    const decision = await decide(db.sql, textMessage('2 margherita and a coke. how much is it?'), DEFAULT_MATCH);
    expect(decision).toEqual({ kind: 'clarify', problems: [{ phrase: 'how much is it', reason: 'question', candidates: [] }] });
    expect(replies.clarification((decision as Extract<Decision, { kind: 'clarify' }>).problems)).toBe(
      'Sorry, we couldn\'t place your order yet. "how much is it": we cannot answer a question inside an order. To order, send the items on their own; the menu shows our prices. Reply MENU to see everything we offer.',
    );
  });

  it('answers a question about the shop with the menu and an empty refusal with the menu', async () => {
    expect(await cartIn('do you have tiramisu?')).toBe('menu');
    // Beside small talk that names no product, or cut by a line break, a question is still one.
    expect(await cartIn('Hi there, quick question: how much is a margherita?')).toBe('menu');
    expect(await cartIn('Hello, I am new here. Do you have vegan pizza?')).toBe('menu');
    expect(await cartIn('do you\nhave margherita?')).toBe('menu');
    expect(await cartIn('no thanks')).toBe('menu');
  });

  it('confirms each item with its quantity and price, the total, and how to correct it', async () => {
    const decision = await decide(db.sql, textMessage('2 margherita and a coke'), DEFAULT_MATCH);
    if (decision.kind !== 'order') throw new Error(`expected an order, got ${decision.kind}`);
    const confirmation = replies.orderConfirmation('42', 'Ana', decision.lines, decision.total, decision.currency);
    expect(confirmation).toContain('2 × Pizza Margherita (EUR 8.50)');
    expect(confirmation).toContain('1 × Coca-Cola (EUR 2.50)');
    expect(confirmation).toContain('Total EUR 19.50');
    expect(confirmation).toContain('Reply CANCEL to cancel it, then send your order again.');
  });
});
