import { CORPUS_LANGUAGES, formatCart, runCorpus, scoreByLanguage, type CorpusResult } from '../../bench/order-corpus';
import { loadConfig } from '../../src/config';
import { createTestDatabase, type TestDatabase } from '../support/database';

/** The bar: no wrong order at all, and at least this share of exact carts. */
const MIN_EXACT_ACCURACY = 0.95;
const MIN_MESSAGES = 150;

let db: TestDatabase;
let results: CorpusResult[];

beforeAll(async () => {
  db = await createTestDatabase();
  const config = loadConfig({});
  results = await runCorpus(db.sql, { threshold: config.MATCH_THRESHOLD, ambiguityMargin: config.MATCH_AMBIGUITY_MARGIN });
}, 120_000);

afterAll(async () => {
  await db.drop();
});

const describeResult = (r: CorpusResult) => `[${r.lang}] ${JSON.stringify(r.text)}: expected ${formatCart(r.cart)}, got ${formatCart(r.got)} (${r.decision})`;

describe('the labelled order corpus, through the real parser and pg_trgm matcher', () => {
  it(`holds at least ${MIN_MESSAGES} messages, in each of the four languages, with orders and non-orders`, () => {
    expect(results.length).toBeGreaterThanOrEqual(MIN_MESSAGES);
    for (const lang of CORPUS_LANGUAGES) {
      const rows = results.filter((r) => r.lang === lang);
      expect(rows.filter((r) => r.cart === 'none').length).toBeGreaterThanOrEqual(5);
      expect(rows.filter((r) => r.cart !== 'none').length).toBeGreaterThanOrEqual(25);
    }
  });

  it('never orders an item or a quantity the customer did not ask for', () => {
    expect(results.filter((r) => r.outcome === 'wrong').map(describeResult)).toEqual([]);
  });

  it(`gets at least ${MIN_EXACT_ACCURACY * 100} % of the carts exactly right`, () => {
    const all = scoreByLanguage(results).find((score) => score.lang === 'all')!;
    if (all.accuracy < MIN_EXACT_ACCURACY) {
      const misses = results.filter((r) => r.outcome !== 'exact').map(describeResult);
      throw new Error(`exact carts ${all.exact}/${all.messages}; not exact:\n${misses.join('\n')}`);
    }
    expect(all.accuracy).toBeGreaterThanOrEqual(MIN_EXACT_ACCURACY);
  });
});
