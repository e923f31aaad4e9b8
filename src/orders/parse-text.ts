import { takeQuantity } from './parse-text-quantity';
import { normalizeText, phraseAt, removePhrases, stripLeadingPhrases, tokenize, type Token, type WordPhrase } from './parse-text-tokens';
import {
  CANCEL_WORDS,
  CONJUNCTIONS,
  COURTESY,
  GREETINGS,
  MENU_CONTEXT_WORDS,
  MENU_WORDS,
  ORDER_WORDS,
  OPENERS,
  STATUS_WORDS,
  WHERE_WORDS,
} from './parse-text-words';

export type Intent = 'order' | 'cancel' | 'order_status' | 'menu';

export interface ItemPhrase {
  /**
   * As written, not range-checked: "0 pizzas" gives 0 and "500 pizzas" gives 500. The caller must refuse
   * anything outside 1..99 and ask again, since clamping would confirm an order the customer never wrote.
   */
  quantity: number;
  /** The product words, lower-cased, accents kept, quantity and courtesy words removed; never empty. */
  phrase: string;
}

export interface ParseOptions {
  /**
   * Catalog names and aliases. Where one of them spans a conjunction ("Fish and chips",
   * "Mac & Cheese"), the text is not split there.
   */
  keepTogether?: readonly string[];
}

export interface ParsedText {
  intent: Intent;
  /** Only for 'order'; empty when nothing was left after removing courtesy ("thanks!") or emoji. */
  items: ItemPhrase[];
}

/** Items beyond this many are dropped: no chat order is that long, and the confirmation lists what was kept. */
const MAX_ITEMS = 20;

/**
 * Cancel and status need a keyword in a message of at most this many words. Longer text is an order,
 * so a list that happens to contain "status" or "cancela" is not taken as a command.
 */
const MAX_INTENT_WORDS = 8;

const SEPARATORS = /[,;\r\n]/;
// "+" and "&" join items like "and" does, and like it can sit inside a product name.
const SYMBOL_CONJUNCTIONS = /[+&]/g;
// "1. margherita" and "2) coke" on their own lines number a list; they are not quantities.
const LIST_MARKER = /^\s*\d{1,2}[.)]\s+/;

/** Turns a customer's free text into an intent and, for orders, item phrases ready for product matching. */
export function parseOrderText(text: string, options: ParseOptions = {}): ParsedText {
  const normalized = normalizeText(text).replace(SYMBOL_CONJUNCTIONS, ' and ');
  const intent = detectIntent(tokenize(normalized));
  if (intent !== 'order') return { intent, items: [] };
  const items = splitItems(normalized, conjunctionPhrases(options.keepTogether ?? []))
    .map(parseItem)
    .filter((item) => item.phrase.length > 0);
  return { intent, items: items.slice(0, MAX_ITEMS) };
}

/**
 * Keywords count only as whole words, so "cancelled" or "statusbar" never trigger a command.
 * Cancel and order status need a short message (MAX_INTENT_WORDS) with a cancel word, a status word,
 * or a "where" word next to an "order" word. Menu needs every word to be a menu word, a greeting or
 * polite filler ("can I see the menu please", "hola"), so "2 kids menu" stays an order.
 */
function detectIntent(tokens: readonly Token[]): Intent {
  const keys = tokens.map((token) => token.key);
  const short = keys.length > 0 && keys.length <= MAX_INTENT_WORDS;
  const has = (words: ReadonlySet<string>) => keys.some((key) => words.has(key));
  if (short && has(CANCEL_WORDS)) return 'cancel';
  if (short && (has(STATUS_WORDS) || (has(WHERE_WORDS) && has(ORDER_WORDS)))) return 'order_status';
  if (asksForMenu(tokens)) return 'menu';
  return 'order';
}

function asksForMenu(tokens: readonly Token[]): boolean {
  let asked = false;
  for (let index = 0; index < tokens.length; ) {
    const greeting = phraseAt(tokens, index, GREETINGS);
    const key = tokens[index]!.key;
    if (greeting || MENU_WORDS.has(key)) asked = true;
    else if (!MENU_CONTEXT_WORDS.has(key)) return false;
    index += greeting?.length ?? 1;
  }
  return asked;
}

/** Whether the text has a conjunction that a catalog name might contain, i.e. whether keepTogether can matter. */
export function mentionsConjunction(text: string): boolean {
  return tokenize(normalizeText(text).replace(SYMBOL_CONJUNCTIONS, ' and ')).some((token) => CONJUNCTIONS.has(token.key));
}

/** The catalog terms that contain a conjunction, as folded words, longest first. */
function conjunctionPhrases(terms: readonly string[]): WordPhrase[] {
  return terms
    .map((term) => tokenize(normalizeText(term).replace(SYMBOL_CONJUNCTIONS, ' and ')).map((token) => token.key))
    .filter((words) => words.length > 1 && words.some((word) => CONJUNCTIONS.has(word)))
    .sort((a, b) => b.length - a.length);
}

/**
 * Splits on separator characters first, then on whole-word conjunctions, except inside a
 * catalog name; never on "with"/"con"/"com"/"mit".
 */
function splitItems(text: string, keepTogether: readonly WordPhrase[]): Token[][] {
  return text.split(SEPARATORS).flatMap((chunk) => splitOnConjunctions(tokenize(chunk.replace(LIST_MARKER, '')), keepTogether));
}

function splitOnConjunctions(tokens: readonly Token[], keepTogether: readonly WordPhrase[]): Token[][] {
  const protectedIndexes = coveredIndexes(tokens, keepTogether);
  const groups: Token[][] = [[]];
  tokens.forEach((token, index) => {
    if (CONJUNCTIONS.has(token.key) && !protectedIndexes.has(index)) groups.push([]);
    else groups.at(-1)!.push(token);
  });
  return groups;
}

function coveredIndexes(tokens: readonly Token[], phrases: readonly WordPhrase[]): Set<number> {
  const covered = new Set<number>();
  if (phrases.length === 0) return covered;
  tokens.forEach((_token, start) => {
    const phrase = phraseAt(tokens, start, phrases);
    for (let offset = 0; phrase && offset < phrase.length; offset += 1) covered.add(start + offset);
  });
  return covered;
}

function parseItem(tokens: readonly Token[]): ItemPhrase {
  const words = stripLeadingPhrases(removePhrases(tokens, COURTESY), OPENERS);
  const { quantity, rest } = takeQuantity(words);
  return { quantity, phrase: rest.map((token) => token.text).join(' ') };
}
