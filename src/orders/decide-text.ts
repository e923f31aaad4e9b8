import type { Sql } from '../db/client';
import type { Decision, OrderLine, Problem } from './decision';
import { isAcknowledgement } from './acknowledgement';
import { liveCatalog, type CatalogReader } from './catalog-cache';
import { certainCandidate, type Candidate, type MatchOptions, type PhraseVerdict } from './match';
import { buildOrder, validQuantity } from './order-lines';
import { parseOrderText, type ExcludedPhrase, type ItemPhrase, type UnsurePhrase } from './parse-text';
import { DOZEN_WORDS } from './parse-text-quantity';
import { normalizeText, tokenize } from './parse-text-tokens';

/**
 * Free text: parse, then match every phrase in Postgres. An order is created only when every item
 * matched one product with each of its words explained, every quantity is a whole number in range,
 * nothing was unsure, and nothing the customer excluded is in it. Anything else is a clarification.
 */
export async function decideText(sql: Sql, text: string, options: MatchOptions, catalog: CatalogReader = liveCatalog(sql)): Promise<Decision> {
  const terms = await catalog.terms();
  if (isAcknowledgement(text, terms)) return { kind: 'no_reply', type: 'acknowledgement' };
  const parsed = parseOrderText(text, { keepTogether: terms });
  if (parsed.intent !== 'order') return { kind: parsed.intent };
  const { items, excluded, unsure } = parsed;
  if (items.length === 0 && unsure.length === 0) return { kind: 'menu' };
  if (unsure.some((doubt) => doubt.reason === 'too_long')) return { kind: 'clarify', problems: [{ phrase: '', reason: 'too_long', candidates: [] }] };
  const phrases = [...items.map((i) => i.phrase), ...excluded.map((e) => e.phrase), ...unsure.map((u) => u.phrase || u.written)];
  const verdicts = phrases.length === 0 ? [] : await catalog.match(phrases, options);
  const problems = unsure.map((doubt, index) => unsureProblem(doubt, verdicts[items.length + excluded.length + index]!));
  const lines = readLines(items, verdicts.slice(0, items.length), problems);
  const excludedSkus = readExclusions(excluded, verdicts.slice(items.length, items.length + excluded.length), problems);
  // A question beside words that order nothing ("hi, quick question: how much is a
  // margherita?") is a question all the same, and the menu answers it.
  if (lines.length === 0 && unsure.some((doubt) => doubt.reason === 'question')) return { kind: 'menu' };
  for (const line of lines) {
    const refused = excludedSkus.get(line.product.sku);
    if (refused) problems.push({ phrase: refused, reason: 'ambiguous', candidates: [certainCandidate(line.product)] });
  }
  return problems.length > 0 || lines.length === 0 ? { kind: 'clarify', problems } : buildOrder(lines);
}

function readLines(items: readonly ItemPhrase[], verdicts: readonly PhraseVerdict[], problems: Problem[]): OrderLine[] {
  const lines: OrderLine[] = [];
  items.forEach((item, index) => {
    const verdict = verdicts[index]!;
    if (verdict.verdict !== 'matched') problems.push({ phrase: item.phrase, reason: verdict.verdict, candidates: verdict.candidates });
    else if (verdict.product.unexplained.length > 0) problems.push({ phrase: item.phrase, reason: 'unknown', candidates: [verdict.product] });
    else if (!validQuantity(item.quantity)) problems.push({ phrase: item.phrase, reason: 'quantity', candidates: [] });
    // A count in dozens of a product sold by the dozen: "2 dozen donut" of a "Dozen Donuts", 24
    // boxes or 2? Asked; "2 dozen donuts" names the box, and is 2 of it.
    else if (item.inDozens && verdict.product.byTheDozen) problems.push({ phrase: item.phrase, reason: 'quantity', candidates: [verdict.product] });
    // Words that only say what its dozen holds, not the dozen: "12 donuts" of a "Dozen Donuts",
    // 12 boxes or one? Asked; "2 cajas de medialunas" names the box.
    else if (verdict.product.saysOnlyWhatItsDozenHolds && !saysADozen(item.phrase)) problems.push({ phrase: item.phrase, reason: 'quantity', candidates: [verdict.product] });
    // The same product twice ("1 margherita ... 2 margherita") may be a correction: ask rather than add up.
    else if (lines.some((line) => line.product.sku === verdict.product.sku)) problems.push({ phrase: verdict.product.name, reason: 'quantity', candidates: [] });
    else lines.push({ product: verdict.product, quantity: item.quantity });
  });
  return lines;
}

/**
 * What the customer excluded, by sku, with the words they used. A negated phrase that names no
 * product ("sin cebolla", "no ice") asks for a change wagate cannot record, so it is a problem.
 */
function readExclusions(excluded: readonly ExcludedPhrase[], verdicts: readonly PhraseVerdict[], problems: Problem[]): Map<string, string> {
  const skus = new Map<string, string>();
  excluded.forEach((exclusion, index) => {
    const named = exclusion.afterItem ? productsNamedExactly(verdicts[index]!) : productsNamed(verdicts[index]!);
    if (named.length === 0) problems.push({ phrase: exclusion.written, reason: 'unknown', candidates: [] });
    for (const product of named) skus.set(product.sku, exclusion.written);
  });
  return skus;
}

/** The products a phrase names with every word explained: one when matched, several when ambiguous. */
function productsNamed(verdict: PhraseVerdict): Candidate[] {
  if (verdict.verdict === 'matched') return verdict.product.unexplained.length === 0 ? [verdict.product] : [];
  if (verdict.verdict === 'ambiguous' && verdict.candidates[0]!.unexplained.length === 0) return verdict.candidates;
  return [];
}

/**
 * For an exclusion said right after an item: the products it is the name or an alias of ("2
 * margherita no coke"). One it only resembles ("2 pepperoni sin ajo" beside Garlic bread's alias
 * "pan de ajo", "without cheese" beside Quattro Formaggi's "four cheese") is a change to the dish
 * before it, which an order cannot record: taken as the refusal of that product, the dish would
 * be cooked as it is.
 */
function productsNamedExactly(verdict: PhraseVerdict): Candidate[] {
  if (verdict.verdict === 'matched') return verdict.product.named ? [verdict.product] : [];
  if (verdict.verdict === 'ambiguous') return verdict.candidates.filter((candidate) => candidate.named);
  return [];
}

function unsureProblem(doubt: UnsurePhrase, verdict: PhraseVerdict): Problem {
  if (doubt.reason !== 'unknown') return { phrase: doubt.written, reason: doubt.reason, candidates: [] };
  const candidates = verdict.verdict === 'matched' ? [verdict.product] : verdict.candidates;
  return { phrase: doubt.written, reason: 'unknown', candidates };
}

/** Whether an item's words say a dozen ("dozen donuts", "docena de medialunas"). */
function saysADozen(phrase: string): boolean {
  return tokenize(normalizeText(phrase)).some((token) => DOZEN_WORDS.has(token.key));
}
