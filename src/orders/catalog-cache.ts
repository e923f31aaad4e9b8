import type { Sql } from '../db/client';
import { catalogTerms, listMenu, matchPhrases, type MatchOptions, type PhraseVerdict, type Product } from './match';

/** The menu a reply lists: the first products by name. */
export const MENU_PRODUCTS = 20;

/** What decisions and replies read of the catalog. */
export interface CatalogReader {
  /** Every active product's name and aliases, for the parser to keep them together. */
  terms(): Promise<string[]>;
  menu(): Promise<Product[]>;
  /** A message's phrases against the live catalog (pg_trgm in Postgres, never cached). */
  match(phrases: string[], options: MatchOptions): Promise<PhraseVerdict[]>;
}

export type PhraseMatcher = CatalogReader['match'];

/** Reads the catalog afresh on every call: for commands, tests and the bench's corpus. */
export function liveCatalog(sql: Sql): CatalogReader {
  return { terms: () => catalogTerms(sql), menu: () => listMenu(sql, MENU_PRODUCTS), match: (phrases, options) => matchPhrases(sql, phrases, options) };
}

interface Snapshot {
  version: bigint;
  terms: string[];
  menu: Product[];
}

export interface CatalogCache {
  /**
   * The catalog as of `version` (catalog_version, read by the caller in a statement it runs
   * anyway) or newer. Reloaded only when the catalog has changed since the last load, so a
   * steady catalog costs no query per message.
   */
  at(version: string): CatalogReader;
}

/**
 * The catalog's names and menu, kept in memory per worker process (matching stays live, through
 * `match`: the worker passes one that shares a statement between messages). Every change to products
 * moves catalog_version in its own transaction (migration 012), and the snapshot is loaded
 * together with the version in one statement, so a snapshot is never older than its version.
 */
export function createCatalogCache(sql: Sql, match: PhraseMatcher = liveCatalog(sql).match): CatalogCache {
  let current: Snapshot | null = null;
  let loading: Promise<Snapshot> | null = null;

  function load(): Promise<Snapshot> {
    // Concurrent messages that find the cache stale share one reload.
    loading ??= readSnapshot(sql).then(
      (snapshot) => {
        loading = null;
        if (!current || snapshot.version >= current.version) current = snapshot;
        return current;
      },
      (error: unknown) => {
        loading = null;
        throw error;
      },
    );
    return loading;
  }

  async function snapshotAt(version: bigint): Promise<Snapshot> {
    if (current && current.version >= version) return current;
    const loaded = await load();
    // A reload that started before this version was committed can be older: load once more.
    return loaded.version >= version ? loaded : load();
  }

  return {
    at(version) {
      const wanted = BigInt(version);
      return {
        terms: async () => (await snapshotAt(wanted)).terms,
        menu: async () => (await snapshotAt(wanted)).menu,
        match,
      };
    },
  };
}

async function readSnapshot(sql: Sql): Promise<Snapshot> {
  const [row] = await sql<{ version: string; terms: string[]; menu: Product[] }[]>`
    SELECT (SELECT version::text FROM catalog_version) AS version,
           ARRAY(SELECT DISTINCT term FROM products p CROSS JOIN LATERAL unnest(array_prepend(p.name, p.aliases)) AS term WHERE p.active) AS terms,
           coalesce((SELECT json_agg(m) FROM (SELECT sku, name, price::text AS price, currency FROM products
                                               WHERE active ORDER BY name LIMIT ${MENU_PRODUCTS}) AS m), '[]'::json) AS menu`;
  return { version: BigInt(row!.version), terms: row!.terms, menu: row!.menu };
}
