import { loadConfig } from '../../src/config';
import { importCatalog } from '../../src/orders/catalog-import';
import { matchPhrases } from '../../src/orders/match';
import { createTestDatabase, type TestDatabase } from '../support/database';

const CATALOG = `sku,name,price,currency,aliases
CK-MARG,Margarita cocktail,9.00,EUR,margarita
PZ-MARI,Pizza Marinara,7.50,EUR,marinara
DR-COLA,Coca-Cola,2.50,EUR,coke
DR-ZERO,Coke Zero,2.50,EUR,
DR-TEA,Tea,2.00,EUR,
DR-ICED,Iced Tea,2.80,EUR,
PZ-PEPP,Pepperoni Pizza,9.50,EUR,
PZ-PECA,Pepperoni Calzone,10.50,EUR,
DR-AAA1,Cherry Coke,2.70,EUR,
DR-AAA2,Coke Light,2.50,EUR,
DR-AAA3,Coke Vanilla,2.70,EUR,
DR-CMLK,Chocolate Milk,2.20,EUR,
SW-MCHB,Milk Chocolate Bar,1.80,EUR,
`;

let db: TestDatabase;
const config = loadConfig({});
const options = { threshold: config.MATCH_THRESHOLD, ambiguityMargin: config.MATCH_AMBIGUITY_MARGIN };

beforeAll(async () => {
  db = await createTestDatabase();
  await importCatalog(db.sql, CATALOG);
});

afterAll(async () => {
  await db.drop();
});

describe('the ambiguity margin', () => {
  it('asks between two products within the margin of each other, even when the second scores below the threshold', async () => {
    const [verdict] = await matchPhrases(db.sql, ['marnarita'], options);
    expect(verdict!.verdict).toBe('ambiguous');
    const candidates = (verdict as Extract<typeof verdict, { verdict: 'ambiguous' }>).candidates;
    expect(candidates.map((c) => c.sku)).toEqual(['CK-MARG', 'PZ-MARI']);
    // The case itself: one above the threshold, one below it, closer than the margin.
    const [best, second] = candidates;
    expect([best!.score >= options.threshold, second!.score < options.threshold, best!.score - second!.score < options.ambiguityMargin]).toEqual([true, true, true]);
  });

  it('matches a product whose runner-up is further away than the margin', async () => {
    const [verdict] = await matchPhrases(db.sql, ['coca-cola'], options);
    expect(verdict).toMatchObject({ verdict: 'matched', product: { sku: 'DR-COLA' } });
  });
});

describe('a name inside another: word similarity scores both 1, and the phrase settles it', () => {
  const verdictOf = async (phrase: string) => (await matchPhrases(db.sql, [phrase], options))[0]!;

  it.each([
    ['coke zero', 'DR-ZERO'],
    ['coke', 'DR-COLA'],
    ['iced tea', 'DR-ICED'],
    ['tea', 'DR-TEA'],
  ])('"%s" is %s: the one product that explains every word, or the one whose name is the phrase', async (phrase, sku) => {
    const verdict = await verdictOf(phrase);
    expect(verdict).toMatchObject({ verdict: 'matched', product: { sku, unexplained: [] } });
  });

  it('the case itself: "coke zero" scores Coca-Cola (by its alias) and Coke Zero alike', async () => {
    const rows = await db.sql<{ sku: string; score: number }[]>`
      SELECT p.sku, (SELECT max(greatest(word_similarity(wagate_fold('coke zero'), t), word_similarity(t, wagate_fold('coke zero')))) FROM unnest(p.search_terms) t)::float8 AS score
      FROM products p WHERE p.sku IN ('DR-COLA', 'DR-ZERO') ORDER BY p.sku`;
    expect(rows.map((row) => row.score)).toEqual([1, 1]);
  });

  it('keeps the product the phrase names among more tied products than the three read', async () => {
    // Coca-Cola (alias "coke"), Cherry Coke, Coke Light, Coke Vanilla and Coke Zero all score 1 for
    // "coke", and by sku Coca-Cola came fourth: it was cut before the tie was judged.
    expect(await verdictOf('coke')).toMatchObject({ verdict: 'matched', product: { sku: 'DR-COLA', named: true } });
  });

  it('asks between products whose names hold the same words in another order: "milk chocolate"', async () => {
    const verdict = await verdictOf('milk chocolate');
    expect(verdict.verdict).toBe('ambiguous');
    expect((verdict as Extract<typeof verdict, { verdict: 'ambiguous' }>).candidates.map((c) => c.sku).sort()).toEqual(['DR-CMLK', 'SW-MCHB']);
  });

  it('still asks where two products explain the phrase and neither is its name', async () => {
    const verdict = await verdictOf('pepperoni');
    expect(verdict.verdict).toBe('ambiguous');
    expect((verdict as Extract<typeof verdict, { verdict: 'ambiguous' }>).candidates.map((c) => c.sku).sort()).toEqual(['PZ-PECA', 'PZ-PEPP']);
  });
});
