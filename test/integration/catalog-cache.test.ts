import { createCatalogCache } from '../../src/orders/catalog-cache';
import { importCatalog } from '../../src/orders/catalog-import';
import { createTestDatabase, type TestDatabase } from '../support/database';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await importCatalog(db.sql, 'sku,name,price,currency,aliases\nCOKE,Coca-Cola,2.50,EUR,coke\n');
});

afterAll(async () => {
  await db.drop();
});

const version = async () => (await db.sql<{ version: string }[]>`SELECT version::text FROM catalog_version`)[0]!.version;

describe('the worker\'s in-memory catalog', () => {
  it('serves names and menu from memory while catalog_version stays, and reloads once it moves', async () => {
    const cache = createCatalogCache(db.sql);
    const before = await version();
    expect(await cache.at(before).terms()).toEqual(expect.arrayContaining(['Coca-Cola', 'coke']));

    // A change the cache has not been told about yet (no newer version asked for) is not read.
    await importCatalog(db.sql, 'sku,name,price,currency,aliases\nFISH,Fish and chips,11.00,EUR,\n');
    const after = await version();
    expect(BigInt(after)).toBeGreaterThan(BigInt(before));
    expect(await cache.at(before).terms()).not.toContain('Fish and chips');

    const menu = await cache.at(after).menu();
    expect(menu.map((product) => product.sku)).toEqual(['COKE', 'FISH']);
    expect(await cache.at(after).terms()).toContain('Fish and chips');
  });

  it('moves catalog_version with every kind of change to products, also by hand', async () => {
    const start = BigInt(await version());
    await db.sql`UPDATE products SET active = false WHERE sku = 'FISH'`;
    const afterUpdate = BigInt(await version());
    await db.sql`DELETE FROM products WHERE sku = 'FISH'`;
    const afterDelete = BigInt(await version());
    expect(afterUpdate).toBeGreaterThan(start);
    expect(afterDelete).toBeGreaterThan(afterUpdate);
    const cache = createCatalogCache(db.sql);
    expect(await cache.at(String(afterDelete)).terms()).not.toContain('Fish and chips');
  });
});
