import { loadConfig } from '../../src/config';
import { importCatalog } from '../../src/orders/catalog-import';
import { matchPhrases } from '../../src/orders/match';
import { createTestDatabase, type TestDatabase } from '../support/database';

const CATALOG = `sku,name,price,currency,aliases
CK-MARG,Margarita cocktail,9.00,EUR,margarita
PZ-MARI,Pizza Marinara,7.50,EUR,marinara
DR-COLA,Coca-Cola,2.50,EUR,coke
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
    const [verdict] = await matchPhrases(db.sql, ['coke'], options);
    expect(verdict).toMatchObject({ verdict: 'matched', product: { sku: 'DR-COLA' } });
  });
});
