import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CatalogImportError, decodeCatalogFile, importCatalog, parseCatalogCsv } from '../../src/orders/catalog-import';
import { createTestDatabase, type TestDatabase } from '../support/database';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'catalog');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

interface ProductRow {
  sku: string;
  name: string;
  aliases: string[];
  price: string;
  currency: string;
  active: boolean;
  updated_at: Date;
}

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

beforeEach(async () => {
  await db.sql`DELETE FROM products`;
});

async function products(): Promise<ProductRow[]> {
  return db.sql<ProductRow[]>`
    SELECT sku, name, aliases, price, currency, active, updated_at FROM products ORDER BY sku`;
}

async function importFailure(csvText: string): Promise<CatalogImportError> {
  const error = await importCatalog(db.sql, csvText).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(CatalogImportError);
  return error as CatalogImportError;
}

describe('importCatalog', () => {
  it('imports a good file with exact prices, trimmed aliases, upper-cased currency and a quoted name with a comma', async () => {
    const result = await importCatalog(db.sql, fixture('menu.csv'));

    expect(result).toEqual({ rows: 3, inserted: 3, updated: 0, unchanged: 0, deactivated: 0, sharedNames: [] });
    const rows = await products();
    expect(rows.map(({ updated_at: _, ...row }) => row)).toEqual([
      { sku: 'DR-COKE', name: 'Coca-Cola 33cl', aliases: ['coke', 'cola'], price: '2.00', currency: 'EUR', active: true },
      { sku: 'PZ-MARG', name: 'Pizza Margherita', aliases: ['margherita', 'marg'], price: '8.50', currency: 'EUR', active: true },
      { sku: 'PZ-QF', name: 'Quattro Formaggi, large', aliases: ['quattro formaggi', '4 cheese'], price: '12.00', currency: 'EUR', active: true },
    ]);
  });

  it('changes nothing when the same file is imported again, not even updated_at', async () => {
    await importCatalog(db.sql, fixture('menu.csv'));
    const before = await products();

    const result = await importCatalog(db.sql, fixture('menu.csv'));

    expect(result).toEqual({ rows: 3, inserted: 0, updated: 0, unchanged: 3, deactivated: 0, sharedNames: [] });
    expect(await products()).toEqual(before);
  });

  it('updates only the row whose price changed', async () => {
    await importCatalog(db.sql, fixture('menu.csv'));
    const before = await products();

    const result = await importCatalog(db.sql, fixture('menu-coke-price-changed.csv'));

    expect(result).toEqual({ rows: 3, inserted: 0, updated: 1, unchanged: 2, deactivated: 0, sharedNames: [] });
    const after = await products();
    const coke = after.find((row) => row.sku === 'DR-COKE')!;
    expect(coke.price).toBe('2.20');
    expect(coke.updated_at.getTime()).toBeGreaterThan(before.find((row) => row.sku === 'DR-COKE')!.updated_at.getTime());
    expect(after.filter((row) => row.sku !== 'DR-COKE')).toEqual(before.filter((row) => row.sku !== 'DR-COKE'));
  });

  it('reactivates a listed product and leaves products missing from the file as they are', async () => {
    await db.sql`
      INSERT INTO products (sku, name, price, currency, active)
      VALUES ('PZ-MARG', 'Pizza Margherita', 8.50, 'EUR', false), ('DS-GONE', 'Old dessert', 3, 'EUR', false),
             ('DR-KEPT', 'Kept drink', 1.5, 'EUR', true)`;

    const result = await importCatalog(db.sql, fixture('menu.csv'));

    expect(result).toEqual({ rows: 3, inserted: 2, updated: 1, unchanged: 0, deactivated: 0, sharedNames: [] });
    const active = Object.fromEntries((await products()).map((row) => [row.sku, row.active]));
    expect(active).toEqual({ 'DR-COKE': true, 'DR-KEPT': true, 'DS-GONE': false, 'PZ-MARG': true, 'PZ-QF': true });
  });

  it('names the products that answer to one name once case and accents are folded, or through an alias', async () => {
    const result = await importCatalog(db.sql, 'sku,name,price,currency,aliases\nCF-LATTE-1,Café Latte,3,EUR,\nCF-LATTE-2,CAFE LATTE,3,EUR,\nDR-COLA,Coca-Cola,2,EUR,Coke|Cola\nDR-COKE-Z,Coke,2,EUR,\n');
    expect(result.sharedNames).toEqual([
      { name: 'cafe latte', skus: ['CF-LATTE-1', 'CF-LATTE-2'] },
      { name: 'coke', skus: ['DR-COKE-Z', 'DR-COLA'] },
    ]);
    await db.sql`UPDATE products SET active = false WHERE sku IN ('CF-LATTE-1', 'CF-LATTE-2', 'DR-COLA', 'DR-COKE-Z')`;
  });

  it('switches off the active products missing from a whole-menu file, and names the products that share a name', async () => {
    await db.sql`
      INSERT INTO products (sku, name, price, currency, active)
      VALUES ('OLD-MARG', 'Pizza Margherita', 8.50, 'EUR', true), ('DR-KEPT', 'Kept drink', 1.5, 'EUR', true),
             ('DS-GONE', 'Old dessert', 3, 'EUR', false)`;
    // A new point of sale renamed the skus: the old margherita stays on the menu beside the new one.
    const partial = await importCatalog(db.sql, fixture('menu.csv'));
    expect(partial).toMatchObject({ deactivated: 0, sharedNames: [{ name: 'pizza margherita', skus: ['OLD-MARG', 'PZ-MARG'] }] });

    const whole = await importCatalog(db.sql, fixture('menu.csv'), { deactivateMissing: true });
    expect(whole).toEqual({ rows: 3, inserted: 0, updated: 0, unchanged: 3, deactivated: 2, sharedNames: [] });
    const active = Object.fromEntries((await products()).map((row) => [row.sku, row.active]));
    expect(active).toEqual({ 'DR-COKE': true, 'DR-KEPT': false, 'DS-GONE': false, 'OLD-MARG': false, 'PZ-MARG': true, 'PZ-QF': true });
  });

  it('refuses --deactivate-missing with a file of no products, which would take the whole menu off', async () => {
    await importCatalog(db.sql, fixture('menu.csv'));
    const error = await importCatalog(db.sql, 'sku,name,price,currency,aliases\n,,,,\n', { deactivateMissing: true }).then(() => undefined, (thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(CatalogImportError);
    expect((error as Error).message).toContain('with --deactivate-missing every product would be switched off');
    expect((await products()).every((row) => row.active)).toBe(true);
  });

  it('refuses to switch off more than half of a menu of more than five without --yes, and changes nothing then', async () => {
    const many = Array.from({ length: 8 }, (_, i) => `('OLD-${i}', 'Old dish ${i}', 5, 'EUR', true)`).join(', ');
    await db.sql.unsafe(`INSERT INTO products (sku, name, price, currency, active) VALUES ${many}`);
    // The first rows of an export that stopped early: three new products, eight old ones left out.
    const error = await importCatalog(db.sql, fixture('menu.csv'), { deactivateMissing: true }).then(() => undefined, (thrown: unknown) => thrown);
    expect((error as Error).message).toContain('it would switch off 8 of the 11 active products; if the file really is the whole menu, import it again with --yes');
    expect((await products()).filter((row) => row.active).map((row) => row.sku)).toHaveLength(8);
    const allowed = await importCatalog(db.sql, fixture('menu.csv'), { deactivateMissing: true, allowMostOff: true });
    expect(allowed).toMatchObject({ inserted: 3, deactivated: 8 });
  });

  it('reads a file with a UTF-8 BOM, CRLF line ends, reordered columns and escaped quotes', async () => {
    const text = fixture('bom-crlf-reordered.csv');
    // Guards the fixture itself: an editor that strips the BOM or the CRLFs would make this test vacuous.
    expect(text.startsWith('\uFEFF')).toBe(true);
    expect(text).toContain('\r\n');

    const result = await importCatalog(db.sql, text);

    expect(result).toEqual({ rows: 2, inserted: 2, updated: 0, unchanged: 0, deactivated: 0, sharedNames: [] });
    expect((await products()).map(({ sku, name, price, aliases }) => ({ sku, name, price, aliases }))).toEqual([
      { sku: 'DS-TIRA', name: 'Tiramisu, home-made', price: '4.50', aliases: [] },
      { sku: 'PZ-DIAV', name: 'Pizza "Diavola", spicy', price: '9.90', aliases: ['diavola', 'spicy salami'] },
    ]);
  });

  it('reports every bad row and header problem with its line number, and imports nothing', async () => {
    await importCatalog(db.sql, fixture('menu.csv'));
    const before = await products();

    const error = await importFailure(fixture('invalid.csv'));

    expect(error.code).toBe('CATALOG_INVALID');
    expect(error.problems).toEqual([
      'line 1: header: unknown column "colour"; the columns are sku,name,price,currency,aliases',
      'line 1: header: missing column "aliases"',
      'line 2: price: must be an amount of 0 or more with a point and at most 2 decimals, like 8.50 or 12 (got "8,50")',
      'line 3: name: is empty',
      // line 4 has a lower-case currency, which is accepted.
      'line 6: currency: must be a 3-letter currency code, like EUR (got "EURO")',
      'line 7: sku: "DR-COKE" is already on line 4; each sku may appear once',
      // The quoted name spans lines 8 and 9; the row is reported where it starts.
      'line 8: price: must be an amount of 0 or more with a point and at most 2 decimals, like 8.50 or 12 (got "1e3")',
      'line 10: price: must be an amount of 0 or more with a point and at most 2 decimals, like 8.50 or 12 (got "-1")',
      'line 11: sku: must not contain spaces (got "PZ 1")',
    ]);
    // The message is what the CLI prints: every problem on its own line.
    expect(error.message.split('\n').slice(1)).toEqual(error.problems);
    expect(error.message.split('\n')[0]).toMatch(/nothing was changed; fix 9 problems/);
    expect(await products()).toEqual(before);
  });
});

describe('parseCatalogCsv', () => {
  const header = 'sku,name,price,currency,aliases';

  it('rejects a row with more values than columns, naming the line', () => {
    expect(() => parseCatalogCsv(`${header}\nPZ-MARG,Pizza, large,8.50,EUR,\n`)).toThrow(
      'line 2: row: has 6 values but the header has 5 columns (put a value that contains a comma in double quotes)',
    );
  });

  it('reports an unclosed quote on the line where its row starts, not at the end of the file', () => {
    const text = `${header}\nPZ-MARG,Pizza,8.50,EUR,\n\nPZ-QF,"Quattro,12,EUR,\nDR-COKE,Coke,2,EUR,\n`;
    expect(() => parseCatalogCsv(text)).toThrow(CatalogImportError);
    expect(() => parseCatalogCsv(text)).toThrow('\nline 4: csv: a double-quoted value is never closed');
  });

  it('names a file saved with semicolons between the columns, once, instead of a problem per line', () => {
    const error = (() => {
      try {
        parseCatalogCsv('sku;name;price;currency;aliases\nPZ-MARG;Pizza Margherita;8,50;EUR;margherita\n');
      } catch (thrown) {
        return thrown as CatalogImportError;
      }
      throw new Error('a semicolon-separated file was accepted');
    })();
    expect(error.problems).toEqual([
      'line 1: header: the columns are separated by semicolons; save the file with commas between them (sku,name,price,currency,aliases), e.g. as "CSV UTF-8 (comma delimited)"',
    ]);
  });

  it('counts a CRLF inside a quoted value as one line when numbering later rows', () => {
    const text = `${header}\r\nPZ-BIG,"Pizza\r\nfor two",20,EUR,\r\nDR-COKE,Coke,x,EUR,\r\n`;
    expect(() => parseCatalogCsv(text)).toThrow(/\nline 4: price: .* \(got "x"\)$/);
  });

  it('rejects an empty file and a too-long sku, and accepts a header-only file as an empty catalog', () => {
    expect(() => parseCatalogCsv('\uFEFF\n\n')).toThrow('line 1: header: the file is empty');
    expect(() => parseCatalogCsv(`${header}\n${'X'.repeat(65)},Long,1,EUR,\n`)).toThrow(/line 2: sku: is longer than 64 characters/);
    expect(parseCatalogCsv(`${header}\n${'X'.repeat(64)},Long,1,EUR,\n`)).toHaveLength(1);
    expect(parseCatalogCsv(`${header}\n`)).toEqual([]);
  });

  it('puts a cell\'s line breaks and tabs on one line, and refuses invisible characters, naming line and field', () => {
    expect(parseCatalogCsv(`${header}\nPZ-BIG,"Pizza\nfor\ttwo",20,EUR,"big one |\n family pizza"\n`)).toEqual([
      { sku: 'PZ-BIG', name: 'Pizza for two', price: '20', currency: 'EUR', aliases: ['big one', 'family pizza'] },
    ]);
    const problems = (text: string) => {
      try {
        parseCatalogCsv(text);
      } catch (error) {
        return (error as CatalogImportError).problems;
      }
      return [];
    };
    expect(problems(`${header}\nP1\u200b,Zero width,1,EUR,\nP2,Nul\u0000name,1,EUR,\nP3,Right,1,EUR,Coke\u202e\n`)).toEqual([
      expect.stringMatching(/^line 2: sku: contains an invisible or control character/),
      expect.stringMatching(/^line 3: name: contains an invisible or control character/),
      expect.stringMatching(/^line 4: aliases: contains an invisible or control character/),
    ]);
    // An emoji built with zero-width joiners stays.
    expect(parseCatalogCsv(`${header}\nCHEF,\u{1F468}\u200d\u{1F373} special,9,EUR,\n`)[0]!.name).toBe('\u{1F468}\u200d\u{1F373} special');
  });

  it('reads UTF-8 files and refuses Windows-1252 and UTF-16 ones, saying how to save them', () => {
    const utf8 = `${header}\nP1,Café crème,8.50,EUR,\n`;
    expect(decodeCatalogFile(Buffer.from(utf8, 'utf8'))).toBe(utf8);
    expect(() => decodeCatalogFile(Buffer.from(utf8, 'latin1'))).toThrow(
      'line 2: encoding: byte 0xE9 is not UTF-8 (the file looks saved as Windows-1252 or Latin-1); save it as "CSV UTF-8 (Comma delimited)" and import it again',
    );
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(utf8, 'utf16le')]);
    expect(() => decodeCatalogFile(utf16)).toThrow('line 1: encoding: the file is UTF-16 (Excel\'s "Unicode Text")');
    expect(() => decodeCatalogFile(Buffer.from(utf8, 'utf16le'))).toThrow('line 1: encoding: the file is UTF-16');
    // A stray NUL in a UTF-8 file is the field's problem, named by its line.
    const withNul = decodeCatalogFile(Buffer.from(`${header}\nP1,Pi\u0000zza,1,EUR,\n`, 'utf8'));
    expect(() => parseCatalogCsv(withNul)).toThrow(/line 2: name: contains an invisible or control character/);
  });

  it('refuses names and aliases long or many enough to slow every customer\'s message, naming line and field', () => {
    expect(() => parseCatalogCsv(`${header}\nP1,${'n'.repeat(201)},1,EUR,\n`)).toThrow(/line 2: name: is longer than 200 characters/);
    expect(() => parseCatalogCsv(`${header}\nP1,Pizza,1,EUR,${'a'.repeat(101)}\n`)).toThrow(/line 2: aliases: has an alias longer than 100 characters/);
    const many = Array.from({ length: 51 }, (_, i) => `alias ${i}`).join('|');
    expect(() => parseCatalogCsv(`${header}\nP1,Pizza,1,EUR,${many}\n`)).toThrow(/line 2: aliases: has more than 50 aliases/);
    const fifty = Array.from({ length: 50 }, (_, i) => `alias ${i}`).join('|');
    expect(parseCatalogCsv(`${header}\nP1,${'n'.repeat(200)},1,EUR,${fifty}\n`)[0]!.aliases).toHaveLength(50);
  });

  it('keeps the price as the exact decimal text', () => {
    const [row] = parseCatalogCsv(`${header}\nA,Big,9999999999.99,usd,\n`);
    expect(row).toEqual({ sku: 'A', name: 'Big', price: '9999999999.99', currency: 'USD', aliases: [] });
    expect(() => parseCatalogCsv(`${header}\nA,Too big,10000000000,USD,\n`)).toThrow(/line 2: price:/);
    expect(() => parseCatalogCsv(`${header}\nA,Three decimals,1.005,USD,\n`)).toThrow(/line 2: price:/);
  });
});
