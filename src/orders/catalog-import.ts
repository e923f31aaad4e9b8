import { transaction, type Sql } from '../db/client';
import { CatalogImportError, parseCatalogCsv, type CatalogRow } from './catalog-csv';

export { CATALOG_COLUMNS, CatalogImportError, decodeCatalogFile, parseCatalogCsv, type CatalogRow } from './catalog-csv';

export interface CatalogImportResult {
  rows: number;
  inserted: number;
  updated: number;
  unchanged: number;
  /** Active products missing from the file that the import switched off (deactivateMissing). */
  deactivated: number;
  /** Names that more than one active product carries after the import, with their skus. */
  sharedNames: { name: string; skus: string[] }[];
}

export interface CatalogImportOptions {
  /**
   * The file is the whole menu: active products missing from it are switched off (never
   * deleted; orders keep pointing at them), in the same transaction.
   */
  deactivateMissing?: boolean;
  /** With deactivateMissing, switch off even more than half of the active menu (--yes). */
  allowMostOff?: boolean;
}

/** Arbitrary constant: concurrent imports queue behind one another instead of interleaving row locks. */
const CATALOG_IMPORT_LOCK_KEY = 7_412_002;
/** Switching off this many products or fewer is never taken for a truncated file. */
const MOST_OFF_FLOOR = 5;
/** Rows per INSERT, to bound the size of one statement's jsonb parameter. */
const UPSERT_BATCH_ROWS = 500;

/**
 * Upserts every row of a catalog CSV in one transaction, or, if any row is invalid, throws
 * CatalogImportError and changes nothing.
 *
 * Products missing from the file are left as they are, active or not, unless the import is
 * told the file is the whole menu (deactivateMissing): a file that lists only part of the menu
 * (say, today's drinks) must not switch the rest of it off.
 */
export async function importCatalog(sql: Sql, csvText: string, options: CatalogImportOptions = {}): Promise<CatalogImportResult> {
  const rows = parseCatalogCsv(csvText);
  // A truncated export (its header alone) would take the whole menu off.
  if (options.deactivateMissing && rows.length === 0) {
    throw new CatalogImportError(['line 1: file: it lists no product, and with --deactivate-missing every product would be switched off; import the whole menu']);
  }
  const changed = await transaction(sql, async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${CATALOG_IMPORT_LOCK_KEY})`;
    let inserted = 0;
    let updated = 0;
    for (let start = 0; start < rows.length; start += UPSERT_BATCH_ROWS) {
      const outcomes = await upsertProducts(tx, rows.slice(start, start + UPSERT_BATCH_ROWS));
      inserted += outcomes.filter((outcome) => outcome.inserted).length;
      updated += outcomes.filter((outcome) => !outcome.inserted).length;
    }
    const deactivated = options.deactivateMissing ? await deactivateMissing(tx, rows.map((row) => row.sku), options.allowMostOff === true) : 0;
    return { inserted, updated, deactivated, sharedNames: await sharedActiveNames(tx) };
  });
  return { rows: rows.length, ...changed, unchanged: rows.length - changed.inserted - changed.updated };
}

/**
 * Switches off the active products missing from the file. More than half of the menu, and
 * more than a handful, is refused without allowMostOff: a truncated export (its first rows
 * only) would otherwise take most of the menu off. The refusal rolls the whole import back.
 */
async function deactivateMissing(tx: Sql, skus: string[], allowMostOff: boolean): Promise<number> {
  const switchedOff = await tx`
    UPDATE products SET active = false, updated_at = now()
    WHERE active AND NOT (sku = ANY(${skus}::text[]))
    RETURNING sku`;
  // The file's products are active after the upsert; the others switched off were the rest.
  const active = skus.length + switchedOff.length;
  if (!allowMostOff && switchedOff.length > MOST_OFF_FLOOR && switchedOff.length * 2 > active) {
    throw new CatalogImportError([
      `file: it would switch off ${switchedOff.length} of the ${active} active products; if the file really is the whole menu, import it again with --yes`,
    ]);
  }
  return switchedOff.length;
}

/**
 * Two active products that answer to one name score alike for every customer who writes it, so
 * each such order becomes a question: after a re-import with new skus, for instance, which left
 * the old ones on the menu. Compared as matching reads them (search_terms: names and aliases,
 * case and accents folded), so "Café Latte" beside "Cafe Latte", or one product's alias "Coke"
 * beside another's name, is named too. `name` is the shared term as matching reads it.
 */
async function sharedActiveNames(tx: Sql): Promise<{ name: string; skus: string[] }[]> {
  return tx<{ name: string; skus: string[] }[]>`
    SELECT min(term) AS name, skus FROM (
      SELECT t.term, array_agg(DISTINCT p.sku ORDER BY p.sku) AS skus
      FROM products p CROSS JOIN LATERAL unnest(p.search_terms) AS t(term)
      WHERE p.active
      GROUP BY t.term HAVING count(DISTINCT p.sku) > 1
    ) shared
    GROUP BY skus ORDER BY 1 LIMIT 20`;
}

/**
 * Returns one outcome per row inserted or changed; a row whose values are already stored is
 * skipped by the WHERE, so it keeps its updated_at and returns nothing. xmax is 0 only on a
 * freshly inserted tuple, which tells inserts from updates in a single statement. The rows go
 * as text: postgres.js would JSON-encode again a parameter it sees typed as jsonb.
 */
async function upsertProducts(tx: Sql, rows: CatalogRow[]): Promise<{ inserted: boolean }[]> {
  return tx<{ inserted: boolean }[]>`
    INSERT INTO products (sku, name, aliases, price, currency, active, updated_at)
    SELECT r.sku, r.name, r.aliases, r.price, r.currency, true, now()
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb)
      AS r(sku text, name text, aliases text[], price numeric, currency text)
    ON CONFLICT (sku) DO UPDATE SET
      name = EXCLUDED.name, aliases = EXCLUDED.aliases, price = EXCLUDED.price,
      currency = EXCLUDED.currency, active = true, updated_at = now()
    WHERE (products.name, products.aliases, products.price, products.currency, products.active)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.aliases, EXCLUDED.price, EXCLUDED.currency, true)
    RETURNING (xmax = 0) AS inserted`;
}
