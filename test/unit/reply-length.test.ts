import { REPLY_LANGUAGES } from '../../src/orders/detect-language';
import type { Product } from '../../src/orders/match';
import { loadReplyCatalogues, MAX_REPLY_CHARS, repliesIn } from '../../src/orders/replies';

const catalogues = loadReplyCatalogues();

function product(n: number, nameChars: number): Product {
  const name = `Pizza ${n} ${'with extra toppings '.repeat(20)}`.slice(0, nameChars);
  return { sku: `SKU-${n}`, name, price: '1234567890.99', currency: 'EUR' };
}

const twenty = (nameChars: number) => Array.from({ length: 20 }, (_, i) => product(i + 1, nameChars));

describe.each(REPLY_LANGUAGES)('replies that list products, in %s', (language) => {
  const replies = repliesIn(catalogues[language]);

  it('fit a menu of 20 products with 200-character names in one message, naming each one', () => {
    const menu = replies.menu(twenty(200));
    expect(menu.length).toBeLessThanOrEqual(MAX_REPLY_CHARS);
    for (let n = 1; n <= 20; n += 1) expect(menu).toContain(`• Pizza ${n} `);
  });

  it('fit an order confirmation of 20 such lines in one message, keeping its total and every line', () => {
    const lines = twenty(200).map((p) => ({ product: p, quantity: 99 }));
    const confirmation = replies.orderConfirmation('123456789', 'N'.repeat(500), lines, '197530864178.20', 'EUR');
    expect(confirmation.length).toBeLessThanOrEqual(MAX_REPLY_CHARS);
    expect(confirmation).toContain('197530864178.20');
    for (let n = 1; n <= 20; n += 1) expect(confirmation).toContain(`Pizza ${n}`);
  });

  it('leave names whole when they fit', () => {
    const menu = replies.menu(twenty(30));
    for (const p of twenty(30)) expect(menu).toContain(p.name);
  });
});
