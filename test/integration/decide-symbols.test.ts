import { migrate, readMigrations } from '../../src/db/migrate';
import { importCatalog } from '../../src/orders/catalog-import';
import { decide } from '../../src/orders/decide';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { cartOf, DEFAULT_MATCH, textMessage } from '../support/decide';

// Names that carry "&", "+" or "#": the parser reads the symbols as words ("and", "number").
const CATALOG = `sku,name,price,currency,aliases
MC-CHS,Mac & Cheese,7.00,EUR,
BG-FRY,Burger + Fries,9.00,EUR,
BG-ONE,Burger #1,8.00,EUR,
DR-COLA,Coca-Cola,2.50,EUR,coke
`;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await importCatalog(db.sql, CATALOG);
});

afterAll(async () => {
  await db.drop();
});

describe('products whose names hold a symbol', () => {
  it.each([
    ['2 mac & cheese', { 'MC-CHS': 2 }],
    ['2 mac and cheese, 1 coke', { 'MC-CHS': 2, 'DR-COLA': 1 }],
    ['Mac & Cheese', { 'MC-CHS': 1 }],
    ['1 burger + fries', { 'BG-FRY': 1 }],
    ['1 burger and fries', { 'BG-FRY': 1 }],
    ['2 burger #1', { 'BG-ONE': 2 }],
  ])('orders "%s" as the product it names', async (body, cart) => {
    expect(await cartOf(db.sql, body)).toEqual(cart);
  });
});

describe('a catalog imported before names were spelled out', () => {
  it('gets the spelled-out terms when the migration runs, so its "Mac & Cheese" can be ordered too', async () => {
    const earlier = await createTestDatabase({ migrate: false });
    try {
      await migrate(earlier.sql, readMigrations().filter((migration) => migration.version < 36));
      await importCatalog(earlier.sql, CATALOG);
      await migrate(earlier.sql);
      const terms = await earlier.sql<{ sku: string; search_terms: string[] }[]>`SELECT sku, search_terms FROM products ORDER BY sku`;
      expect(terms).toEqual([
        { sku: 'BG-FRY', search_terms: ['burger + fries', 'burger and fries'] },
        { sku: 'BG-ONE', search_terms: ['burger #1', 'burger number 1'] },
        { sku: 'DR-COLA', search_terms: ['coca-cola', 'coke'] },
        { sku: 'MC-CHS', search_terms: ['mac & cheese', 'mac and cheese'] },
      ]);
      const decision = await decide(earlier.sql, textMessage('2 mac & cheese'), DEFAULT_MATCH);
      expect(decision.kind === 'order' && decision.lines.map((line) => [line.product.sku, line.quantity])).toEqual([['MC-CHS', 2]]);
    } finally {
      await earlier.drop();
    }
  });
});
