import type { Check } from './checks';
import { createBenchEnvironment } from './environment';
import { formatCart, runCorpus, scoreByLanguage, type CorpusResult, type LanguageScore } from './order-corpus';
import { percent, table } from './report';
import { loadConfig } from '../src/config';

/** The bar for the corpus: no wrong order, and at least this share of exact carts. */
export const MIN_EXACT_ACCURACY = 0.95;

export interface OrdersSummary {
  scores: LanguageScore[];
  /** Every message whose cart was not the expected one, for reading the misses. */
  notExact: { lang: string; text: string; expected: string; got: string; outcome: string }[];
  match: { threshold: number; ambiguityMargin: number };
  checks: Check[];
}

/**
 * Runs the labelled corpus (test/fixtures/orders) through the worker's own decision code against a
 * database of the bench's own, with the matching settings wagate reads from the environment.
 */
export async function runOrdersBench(track: (release: () => Promise<void>) => () => Promise<void>): Promise<OrdersSummary> {
  const env = await createBenchEnvironment();
  const release = track(() => env.destroy());
  const config = loadConfig(process.env);
  const match = { threshold: config.MATCH_THRESHOLD, ambiguityMargin: config.MATCH_AMBIGUITY_MARGIN };
  const results = await runCorpus(env.sql, match);
  await release();
  const scores = scoreByLanguage(results);
  const all = scores.find((score) => score.lang === 'all')!;
  return {
    scores,
    notExact: results.filter((r) => r.outcome !== 'exact').map(toNote),
    match,
    checks: [
      { name: 'corpus: no wrong orders', ok: all.wrong === 0, detail: `${all.wrong} of ${all.messages}` },
      {
        name: `corpus: exact carts >= ${percent(MIN_EXACT_ACCURACY)}`,
        ok: all.accuracy >= MIN_EXACT_ACCURACY,
        detail: `${all.exact} of ${all.messages} (${percent(all.accuracy)})`,
      },
    ],
  };
}

export function formatOrdersReport(summary: OrdersSummary): string {
  const { threshold, ambiguityMargin } = summary.match;
  return [
    `Order understanding: the labelled corpus (MATCH_THRESHOLD ${threshold}, MATCH_AMBIGUITY_MARGIN ${ambiguityMargin})`,
    ...table(
      ['language', 'messages', 'exact', 'exact %', 'wrong orders', 'missed orders'],
      summary.scores.map((s) => [s.lang, String(s.messages), String(s.exact), percent(s.accuracy), String(s.wrong), String(s.missed)]),
    ),
    '',
    'Not exact (wrong: an order that was not asked for; missed: a clarification where an order was possible)',
    ...summary.notExact.map((n) => `  ${n.outcome.padEnd(6)} [${n.lang}] ${JSON.stringify(n.text)}: expected ${n.expected}, got ${n.got}`),
  ].join('\n');
}

function toNote(result: CorpusResult): OrdersSummary['notExact'][number] {
  return { lang: result.lang, text: result.text, expected: formatCart(result.cart), got: formatCart(result.got), outcome: result.outcome };
}
