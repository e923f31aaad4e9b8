import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { Sql } from '../src/db/client';
import { importCatalog } from '../src/orders/catalog-import';
import { decide } from '../src/orders/decide';
import type { Decision } from '../src/orders/decision';
import type { MatchOptions } from '../src/orders/match';
import type { QueueMessage } from '../src/queue/message';

/**
 * The labelled order corpus (test/fixtures/orders): messages as customers write them, in four
 * languages, each with the cart it should make or "none" (a clarification, menu or other answer).
 * Run through the real parser and the real pg_trgm matcher against its own catalog.
 */
const FIXTURES = path.join(__dirname, '..', 'test', 'fixtures', 'orders');
export const CORPUS_LANGUAGES = ['en', 'es', 'pt', 'de'] as const;

const cartSchema = z.record(z.string(), z.number().int().positive());
const corpusSchema = z.array(
  z.object({ lang: z.enum(CORPUS_LANGUAGES), text: z.string().min(1), cart: z.union([z.literal('none'), cartSchema]) }),
);
export type CorpusEntry = z.infer<typeof corpusSchema>[number];
export type Cart = z.infer<typeof cartSchema> | 'none';

/** exact: the cart expected; wrong: an order that is not the one asked for; missed: no order where one was asked for. */
export type Outcome = 'exact' | 'wrong' | 'missed';

export interface CorpusResult extends CorpusEntry {
  got: Cart;
  decision: Decision['kind'];
  outcome: Outcome;
}

export interface LanguageScore {
  lang: string;
  messages: number;
  exact: number;
  wrong: number;
  missed: number;
  /** exact / messages, 0..1 */
  accuracy: number;
}

export function loadCorpus(): { catalogCsv: string; entries: CorpusEntry[] } {
  const catalogCsv = readFileSync(path.join(FIXTURES, 'catalog.csv'), 'utf8');
  const entries = corpusSchema.parse(JSON.parse(readFileSync(path.join(FIXTURES, 'corpus.json'), 'utf8')));
  return { catalogCsv, entries };
}

/** Imports the corpus catalog into `sql` (a migrated database of its own) and decides every message. */
export async function runCorpus(sql: Sql, match: MatchOptions): Promise<CorpusResult[]> {
  const { catalogCsv, entries } = loadCorpus();
  await importCatalog(sql, catalogCsv);
  const results: CorpusResult[] = [];
  for (const [index, entry] of entries.entries()) {
    const decision = await decide(sql, textMessage(`corpus-${index}`, entry.text), match);
    const got = cartOf(decision);
    results.push({ ...entry, got, decision: decision.kind, outcome: judge(entry.cart, got) });
  }
  return results;
}

export function scoreByLanguage(results: readonly CorpusResult[]): LanguageScore[] {
  const score = (lang: string, rows: readonly CorpusResult[]): LanguageScore => {
    const count = (outcome: Outcome) => rows.filter((row) => row.outcome === outcome).length;
    return { lang, messages: rows.length, exact: count('exact'), wrong: count('wrong'), missed: count('missed'), accuracy: rows.length ? count('exact') / rows.length : 0 };
  };
  return [...CORPUS_LANGUAGES.map((lang) => score(lang, results.filter((row) => row.lang === lang))), score('all', results)];
}

export function formatCart(cart: Cart): string {
  if (cart === 'none') return 'none';
  return Object.entries(cart).sort(([a], [b]) => a.localeCompare(b)).map(([sku, quantity]) => `${quantity} ${sku}`).join(', ');
}

function judge(expected: Cart, got: Cart): Outcome {
  if (formatCart(expected) === formatCart(got)) return 'exact';
  return got === 'none' ? 'missed' : 'wrong';
}

function cartOf(decision: Decision): Cart {
  if (decision.kind !== 'order') return 'none';
  return Object.fromEntries(decision.lines.map((line) => [line.product.sku, line.quantity]));
}

function textMessage(messageId: string, body: string): QueueMessage {
  return {
    v: 1,
    source: 'whatsapp',
    messageId,
    from: '15550009999',
    senderKey: '15550009999',
    business: 'corpus',
    contactName: null,
    type: 'text',
    timestampSeconds: null,
    receivedAt: new Date(0).toISOString(),
    content: { text: { body } },
  };
}
