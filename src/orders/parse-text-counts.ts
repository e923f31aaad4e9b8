import { COURTESY_PHRASES, FILLER_WORDS, TIME_OF_DAY, TIME_PREPOSITIONS, TIME_SUFFIXES } from './parse-text-filler';
import { readQuantity } from './parse-text-quantity';
import { phraseAt, SIGNED_NUMBER, toWordSet, type Token, type WordPhrase } from './parse-text-tokens';
import { CONJUNCTIONS } from './parse-text-words';

/** "for", "para", "pra", "für": before a count that ends an item, it says how many people, not how many items. */
const FOR_WORDS = toWordSet(['for', 'para', 'pra', 'für', 'fuer']);

/**
 * True when a count in the chunk cannot be read as one: a negative number ("-1 coke", "coke −2"),
 * which is a correction or a typo, or a count after "for" that ends its item ("margherita for 2",
 * "pizza para dos"), which may be people rather than pizzas. Catalog names are skipped whole, so
 * "Menu for 2" stays a product. A count before the product ("an order for 2 margherita") is read as usual.
 */
export function hasUnreadableCount(tokens: readonly Token[], catalogPhrases: readonly WordPhrase[]): boolean {
  for (let index = 0; index < tokens.length; ) {
    const catalog = phraseAt(tokens, index, catalogPhrases);
    if (catalog) index += catalog.length;
    else if (SIGNED_NUMBER.test(tokens[index]!.key) || countsPeople(tokens, index)) return true;
    else index += 1;
  }
  return false;
}

function countsPeople(tokens: readonly Token[], index: number): boolean {
  if (!FOR_WORDS.has(tokens[index]!.key)) return false;
  const count = readQuantity(tokens, index + 1);
  if (count?.kind !== 'count') return false;
  return endsItem(tokens, index + 1 + count.used);
}

/** Only courtesy, filler and a time of day up to the end of the chunk or the next "and": no product follows. */
function endsItem(tokens: readonly Token[], from: number): boolean {
  for (let index = from; index < tokens.length; ) {
    const key = tokens[index]!.key;
    if (CONJUNCTIONS.has(key)) return true;
    const skipped = phraseAt(tokens, index, COURTESY_PHRASES)?.length ?? timeLength(tokens, index);
    if (!skipped && !FILLER_WORDS.has(key)) return false;
    index += skipped || 1;
  }
  return true;
}

/** Tokens spanned by a time of day ("at 7 pm", "a las 8"), or 0; the item reader drops these the same way. */
function timeLength(tokens: readonly Token[], index: number): number {
  const preposition = phraseAt(tokens, index, TIME_PREPOSITIONS);
  if (!preposition || !TIME_OF_DAY.test(tokens[index + preposition.length]?.key ?? '')) return 0;
  return preposition.length + 1 + (TIME_SUFFIXES.has(tokens[index + preposition.length + 1]?.key ?? '') ? 1 : 0);
}
