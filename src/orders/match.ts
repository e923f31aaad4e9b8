import type { Sql } from '../db/client';

export interface Product {
  sku: string;
  name: string;
  price: string;
  currency: string;
}

export interface Candidate extends Product {
  score: number;
  /**
   * Words of the phrase that none of this product's name and aliases contains (pg_trgm strict word
   * similarity, word against whole words, below the threshold): "large" in "large margherita", "thre"
   * in "thre margheritas", "pepsi" against "pepperoni". A match that leaves a word unexplained is not sure.
   * Listed only for a product scoring at least the threshold; a weaker one is only ever suggested.
   */
  unexplained: string[];
  /**
   * A name or alias of the product counts it in dozens ("Dozen Donuts", an alias "docena de
   * medialunas"): an order of it counted in dozens may mean boxes or pieces.
   */
  byTheDozen?: boolean;
  /**
   * Every word of the phrase is a word of one of the product's names or aliases that count it in
   * dozens: "donuts" of "Dozen Donuts", "medialunas" of a "Caja de Medialunas" aliased "docena de
   * medialunas". Said without its dozen, "12 medialunas" may mean boxes or pieces; "cajas de
   * medialunas" names the box.
   */
  saysOnlyWhatItsDozenHolds?: boolean;
  /**
   * The phrase is this product's name or one of its aliases, once folded: "coke" names Coke, not
   * Coke Zero, though word similarity scores both 1. An equality, not a trigram similarity, which
   * ignores word order ("milk chocolate" against "chocolate milk").
   */
  named: boolean;
}

/** A product known for sure (by sku, or a line already matched), as the candidate a problem names. */
export function certainCandidate(product: Product): Candidate {
  return { ...product, score: 1, unexplained: [], named: true };
}

/** The best products read per phrase. */
const MATCH_CANDIDATES = 3;

/** A product scoring at least this share of MATCH_THRESHOLD is close enough to suggest. */
const SUGGESTION_FRACTION_OF_THRESHOLD = 0.6;

export interface MatchOptions {
  /** Lowest pg_trgm word similarity that counts as a match (0..1). */
  threshold: number;
  /** Two products scoring within this margin of each other make a phrase ambiguous. */
  ambiguityMargin: number;
}

export type PhraseVerdict =
  | { verdict: 'matched'; product: Candidate }
  | { verdict: 'ambiguous'; candidates: Candidate[] }
  | { verdict: 'unknown'; candidates: Candidate[] };

/**
 * Scores each phrase against every active product's folded name and aliases with pg_trgm
 * word similarity, in both directions: "margherita" inside "pizza margherita", and "coffee"
 * inside "large coffee with milk". For the three best products it also lists the phrase's
 * words that the product does not explain. One statement for all phrases of a message.
 */
/** A folded name or alias that counts its product in dozens, as a Postgres regular expression. */
const DOZEN_TERM = '\\m(dozens?|docenas?|duzias?|dutzend)\\M';

export async function matchPhrases(sql: Sql, phrases: string[], options: MatchOptions): Promise<PhraseVerdict[]> {
  if (phrases.length === 0) return [];
  const rows = await sql<(Candidate & { ord: number })[]>`
    SELECT q.ord::integer AS ord, c.sku, c.name, c.price::text AS price, c.currency, c.score,
           -- Only a plausible product can be taken, so only its words are checked (checking every candidate's was two fifths of the statement's time).
           -- Words end at spaces and punctuation, not at whatever is no letter: under the C locale
           -- (CloudNativePG's default) no letter beyond ASCII is one, and "без лука" would vanish
           -- from the check, while pg_trgm, seeing no letters in it either, explains none of it.
           CASE WHEN c.score >= ${options.threshold} THEN ARRAY(
             SELECT w FROM regexp_split_to_table(q.folded, '[[:space:][:punct:]]+') AS w
             WHERE w <> '' AND coalesce((SELECT max(strict_word_similarity(w, term)) FROM unnest(c.search_terms) AS term), 0) < ${options.threshold}
           ) ELSE '{}'::text[] END AS unexplained,
           c.named,
           EXISTS (SELECT 1 FROM unnest(c.search_terms) AS term WHERE term ~ ${DOZEN_TERM}) AS "byTheDozen",
           -- Judged word by word, not by the best score: "medialunas" scores 1 against the box's
           -- own name "caja de medialunas" too, and made 12 boxes of "12 medialunas".
           EXISTS (SELECT 1 FROM unnest(c.search_terms) AS term WHERE term ~ ${DOZEN_TERM}
                     AND NOT EXISTS (SELECT 1 FROM regexp_split_to_table(q.folded, '[[:space:][:punct:]]+') AS w
                                     WHERE w <> '' AND strict_word_similarity(w, term) < ${options.threshold})) AS "saysOnlyWhatItsDozenHolds"
    -- Folded once per phrase, not once per product and term (unaccent is the costly part).
    FROM (SELECT ord, wagate_fold(phrase) AS folded FROM unnest(${phrases}::text[]) WITH ORDINALITY AS u(phrase, ord) OFFSET 0) AS q
    CROSS JOIN LATERAL (
      SELECT p.sku, p.name, p.price, p.currency, p.search_terms,
             (SELECT max(greatest(word_similarity(q.folded, term), word_similarity(term, q.folded)))
              FROM unnest(p.search_terms) AS term)::float8 AS score,
             q.folded = ANY(p.search_terms) AS named
      FROM products p
      WHERE p.active
      -- The product the phrase names first among equal scores, so the cut to three keeps it.
      ORDER BY score DESC, named DESC, p.sku
      LIMIT ${MATCH_CANDIDATES}
    ) c
    ORDER BY q.ord, c.score DESC, c.named DESC, c.sku`;
  // One pass over the rows: the worker matches hundreds of phrases in one statement.
  const byPhrase: Candidate[][] = phrases.map(() => []);
  for (const { ord, ...candidate } of rows) byPhrase[ord - 1]!.push(candidate);
  return byPhrase.map((candidates) => judge(candidates, options));
}

/**
 * matchPhrases for the phrases of several messages in one statement: one list of verdicts
 * per group, in order. The worker gathers concurrent messages' phrases this way.
 */
export async function matchPhraseGroups(sql: Sql, groups: readonly string[][], options: MatchOptions): Promise<PhraseVerdict[][]> {
  const verdicts = await matchPhrases(sql, groups.flat(), options);
  let offset = 0;
  return groups.map((group) => verdicts.slice(offset, (offset += group.length)));
}

function judge(candidates: Candidate[], options: MatchOptions): PhraseVerdict {
  const [best, second] = candidates;
  // Only plausibly close products are suggested; "fanta" gets no "did you mean Pizza Margherita?".
  if (!best || best.score < options.threshold) {
    return { verdict: 'unknown', candidates: candidates.filter((c) => c.score >= options.threshold * SUGGESTION_FRACTION_OF_THRESHOLD) };
  }
  // The runner-up counts even below the threshold: "marnarita" scoring 0.54 for a cocktail and
  // 0.46 for a pizza is a guess between the two, not a match of the first.
  if (second && best.score - second.score < options.ambiguityMargin) {
    const tied = candidates.filter((c) => best.score - c.score < options.ambiguityMargin);
    const settled = settleTie(tied, options);
    return settled ? { verdict: 'matched', product: settled } : { verdict: 'ambiguous', candidates: tied };
  }
  return { verdict: 'matched', product: best };
}

/**
 * Word similarity scores a name found inside the phrase, or the phrase inside a name, as 1:
 * "coke zero" scores 1 for Coke and for Coke Zero, and so does "coke". Where every tied product
 * is a plausible match (none a typo's guess below the threshold), the phrase settles it: the
 * one product whose name or alias is the phrase itself ("coke" is Coke's own name), or else
 * the only product that explains each of its words ("zero" is unexplained by Coke). Anything
 * else stays a question for the customer: "milk chocolate" between Chocolate Milk and a Milk
 * Chocolate Bar.
 */
function settleTie(tied: readonly Candidate[], options: MatchOptions): Candidate | null {
  if (tied.some((c) => c.score < options.threshold)) return null;
  const named = tied.filter((c) => c.named);
  if (named.length > 0) return named.length === 1 ? named[0]! : null;
  // A tie that fills the three places may go on past them: a product cut there could explain
  // every word too, so only a name the phrase equals settles it.
  if (tied.length >= MATCH_CANDIDATES) return null;
  const explained = tied.filter((c) => c.unexplained.length === 0);
  return explained.length === 1 ? explained[0]! : null;
}

/** Every active product's name and aliases, for the parser to read them as product words ("fish and chips", "7up"). */
export async function catalogTerms(sql: Sql): Promise<string[]> {
  const rows = await sql<{ term: string }[]>`
    SELECT DISTINCT term FROM products p CROSS JOIN LATERAL unnest(array_prepend(p.name, p.aliases)) AS term WHERE p.active`;
  return rows.map((row) => row.term);
}

/** Exact lookups for catalog carts and interactive replies, keyed by sku. */
export async function findProducts(sql: Sql, skus: string[]): Promise<Map<string, Product>> {
  if (skus.length === 0) return new Map();
  const rows = await sql<Product[]>`
    SELECT sku, name, price::text AS price, currency FROM products WHERE active AND sku = ANY(${skus}::text[])`;
  return new Map(rows.map((row) => [row.sku, row]));
}

/** A sku in the catalog but no longer active (deactivated, or missing from the last import with --deactivate-missing). */
export async function isRetiredSku(sql: Sql, sku: string): Promise<boolean> {
  const rows = await sql`SELECT 1 FROM products WHERE sku = ${sku} AND NOT active`;
  return rows.length > 0;
}

export async function listMenu(sql: Sql, limit = 20): Promise<Product[]> {
  return sql<Product[]>`
    SELECT sku, name, price::text AS price, currency FROM products WHERE active ORDER BY name LIMIT ${limit}`;
}

/**
 * What to tell an operator whose database was created with the C (or POSIX) character type,
 * as CloudNativePG creates one unless told otherwise, and initdb run without a locale in its
 * environment: Postgres then counts no letter beyond ASCII as one, so pg_trgm matches no product
 * named in another script (Cyrillic, Greek, Arabic, CJK) and `lower()` folds no capital but
 * ASCII's. Orders in those scripts are answered with a question, never guessed; null under any
 * other character type.
 */
export async function cLocaleWarning(sql: Sql): Promise<string | null> {
  const [row] = await sql<{ ctype: string }[]>`SELECT datctype AS ctype FROM pg_database WHERE datname = current_database()`;
  if (!row || !['C', 'POSIX'].includes(row.ctype)) return null;
  return `the database's LC_CTYPE is ${row.ctype}: Postgres counts no letter beyond ASCII as one, so customers who write product names in another script (Cyrillic, Greek, Arabic, CJK) are asked what they meant instead of getting an order; create the database with a UTF-8 LC_CTYPE (C.UTF-8, en_US.UTF-8; in CloudNativePG, spec.bootstrap.initdb.localeCType) and restore into it`;
}
