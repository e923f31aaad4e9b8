import { importCatalog } from '../../src/orders/catalog-import';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { cartOf } from '../support/decide';

/**
 * Products sold by the dozen, through the real parser and pg_trgm matcher: an order counted in
 * dozens of one may mean boxes or pieces, and is asked about; one that names the box is not.
 * Each catalogue in a database of its own: an import adds to the products, it does not replace them.
 */
let db: TestDatabase;

beforeEach(async () => {
  db = await createTestDatabase();
});

afterEach(async () => {
  await db.drop();
});

it.each([
  // "12 donuts" made 12 boxes: only the name that says its dozen matched it.
  ['Dozen Donuts', '', [['a dozen donuts', { P: 1 }], ['2 dozen donuts', { P: 2 }], ['a dozen donuts and 2 cokes', { P: 1, COKE: 2 }], ['2 dozen donut', 'clarify'], ['12 donuts', 'clarify']]],
  // Counted in dozens through its alias only: "dos docenas de medialunas" made 24 boxes, and
  // "12 medialunas", which its own name matches as well, 12 boxes.
  ['Caja de Medialunas', 'docena de medialunas', [['una docena de medialunas', { P: 1 }], ['2 cajas de medialunas', { P: 2 }], ['dos docenas de medialunas', 'clarify'], ['12 medialunas', 'clarify'], ['medialunas', 'clarify']]],
  // "dozen donuts" is no run of "Half Dozen Donuts" to keep together: "a dozen donuts" made one half-dozen box.
  ['Half Dozen Donuts', '', [['half dozen donuts', { P: 1 }], ['a dozen donuts', 'clarify'], ['two dozen donuts', 'clarify']]],
  ['Empanada', 'empanadas', [['a dozen empanadas', { P: 12 }], ['dos docenas de empanadas', { P: 24 }]]],
] as const)('with a %s (aliases: "%s") on the menu', async (name, aliases, orders) => {
  await importCatalog(db.sql, `sku,name,price,currency,aliases\nP,${name},9.00,EUR,${aliases}\nCOKE,Coca-Cola,2.00,EUR,coke|coca\n`);
  for (const [text, cart] of orders) expect([text, await cartOf(db.sql, text)]).toEqual([text, cart]);
});
