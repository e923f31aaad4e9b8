import { importCatalog } from '../../src/orders/catalog-import';
import { cLocaleWarning } from '../../src/orders/match';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { cartOf } from '../support/decide';

/**
 * Under the C locale, Postgres counts no character beyond ASCII as a letter: pg_trgm takes no
 * trigram from "без лука" ("without onion"), and a regular expression's [[:alnum:]] matches
 * none of it. The words a product does not explain must still be found, or "2 margherita без
 * лука" becomes an order for two plain pizzas.
 */
const CATALOG = `sku,name,price,currency,aliases
PZ-MARG,Pizza Margherita,8.50,EUR,margherita
DR-COLA,Coca-Cola,2.50,EUR,coke|cola
`;

let cLocale: TestDatabase;
let utf8: TestDatabase;

beforeAll(async () => {
  [cLocale, utf8] = await Promise.all([createTestDatabase({ cLocale: true }), createTestDatabase()]);
  await Promise.all([importCatalog(cLocale.sql, CATALOG), importCatalog(utf8.sql, CATALOG)]);
});

afterAll(async () => {
  await Promise.all([cLocale?.drop(), utf8?.drop()]);
});

it.each([
  '2 margherita без лука',
  '2 margherita χωρίς κρεμμύδι',
  '1 coke 不要冰',
])('asks about "%s" rather than order what it can read of it, under either locale', async (body) => {
  expect(await cartOf(utf8.sql, body)).toBe('clarify');
  expect(await cartOf(cLocale.sql, body)).toBe('clarify');
});

it.each([
  ['2 margherita, 1 coke', { 'PZ-MARG': 2, 'DR-COLA': 1 }],
  ['2 «margherita» & 1 coca-cola!', { 'PZ-MARG': 2, 'DR-COLA': 1 }],
  ['2 Margherita 🍕', { 'PZ-MARG': 2 }],
])('orders "%s" alike under either locale', async (body, cart) => {
  expect(await cartOf(utf8.sql, body)).toEqual(cart);
  expect(await cartOf(cLocale.sql, body)).toEqual(cart);
});

it('warns the operator of a C locale, where names in another script can never match, and only there', async () => {
  expect(await cLocaleWarning(cLocale.sql)).toMatch(/^the database's LC_CTYPE is C: .*create the database with a UTF-8 LC_CTYPE/);
  expect(await cLocaleWarning(utf8.sql)).toBeNull();
});
