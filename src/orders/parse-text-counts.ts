import { COURTESY_PHRASES, FILLER_WORDS } from './parse-text-filler';
import { readQuantity, timeOfDayLength } from './parse-text-quantity';
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

/** Filler words that may stand between "for" and the count of people: "for the two of us", "für uns zwei". */
const MOST_WORDS_BEFORE_PEOPLE = 2;

function countsPeople(tokens: readonly Token[], index: number): boolean {
  if (!FOR_WORDS.has(tokens[index]!.key) || timeOfDayLength(tokens, index) > 0) return false;
  for (let at = index + 1; at <= index + 1 + MOST_WORDS_BEFORE_PEOPLE && at < tokens.length; at += 1) {
    // "for pickup at seven": a time, not people.
    if (timeOfDayLength(tokens, at) > 0) return false;
    const count = readQuantity(tokens, at);
    if (count?.kind === 'count') return (at === index + 1 || !count.article) && endsItem(tokens, at + count.used);
    if (!FILLER_WORDS.has(tokens[at]!.key)) return false;
  }
  return false;
}

/** Only courtesy, filler and a time of day up to the end of the chunk or the next "and": no product follows. */
function endsItem(tokens: readonly Token[], from: number): boolean {
  for (let index = from; index < tokens.length; ) {
    const key = tokens[index]!.key;
    if (CONJUNCTIONS.has(key)) return true;
    const skipped = phraseAt(tokens, index, COURTESY_PHRASES)?.length ?? timeOfDayLength(tokens, index);
    if (!skipped && !FILLER_WORDS.has(key)) return false;
    index += skipped || 1;
  }
  return true;
}
