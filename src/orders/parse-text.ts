import { holdCancelWords, isPlainCancel } from './parse-text-cancel';
import { hasUnreadableCount } from './parse-text-counts';
import { FILLER_WORDS } from './parse-text-filler';
import { readChunk, type ChunkReading, type ExcludedPhrase, type ItemPhrase, type UnsurePhrase } from './parse-text-items';
import { exceedsTextCap, MAX_ITEMS, MAX_PHRASES } from './parse-text-limits';
import { ARTICLES, readQuantity } from './parse-text-quantity';
import { normalizeText, phraseAt, readsTwoWays, splitGluedNumbers, tokenize, toPhrases, toWordSet, type Token, type WordPhrase } from './parse-text-tokens';
import {
  GREETINGS,
  MENU_CONTEXT_WORDS,
  CLOSING_PHRASES,
  MENU_WORDS,
  ORDER_WORDS,
  QUESTIONS,
  READY_WORDS,
  STATUS_WORDS,
  WHEN_WORDS,
  WHERE_WORDS,
} from './parse-text-words';

export type { ExcludedPhrase, ItemPhrase, UnsurePhrase } from './parse-text-items';

export type Intent = 'order' | 'cancel' | 'order_status' | 'menu';

export interface ParseOptions {
  /**
   * Catalog names and aliases. They are read as product words even where they hold a conjunction
   * ("Fish and chips"), a number ("7up", "Coke Zero") or a word that is otherwise filler.
   */
  keepTogether?: readonly string[];
}

export interface ParsedText {
  intent: Intent;
  /** Only for 'order': the items to match; empty when nothing was left after removing courtesy or emoji. */
  items: ItemPhrase[];
  /** Only for 'order': what the customer said not to include, or asked for zero of. */
  excluded: ExcludedPhrase[];
  /** Only for 'order': parts that cannot be read with certainty; any of them means no order. */
  unsure: UnsurePhrase[];
}

/**
 * Cancel and status need a keyword in a message of at most this many words. Longer text is an order,
 * so a list that happens to contain "status" is not taken as a command.
 */
const MAX_INTENT_WORDS = 8;

// Item separators: commas and colons between words (not "1,5" or "12:30"), semicolons, new lines, and sentence ends.
const SEPARATORS = /(?<!\d)[,:]|[,:](?!\d)|[;\r\n]|[.!?…]+(?=\s|$)/;
// "+" and "&" join items like "and" does, and like it can sit inside a product name.
const SYMBOL_CONJUNCTIONS = /[+&]/g;
// "1. margherita", "2) coke" and "- tea" at the start of a line number a list; they are not quantities.
const LIST_MARKER = /^\s*(?:\d{1,2}[.)]|[-*•·])\s+/;

/**
 * Turns a customer's free text into an intent and, for orders, item phrases ready for product matching.
 * Text over MAX_TEXT_CHARS or with more than MAX_ITEMS items is one doubt ('too_long'), never cut:
 * an order made from part of it would miss what came after.
 */
export function parseOrderText(text: string, options: ParseOptions = {}): ParsedText {
  if (exceedsTextCap(text)) return tooLong();
  const normalized = normalizeText(text).replace(SYMBOL_CONJUNCTIONS, ' and ');
  const { phrases: catalog, words: catalogWords, dotted } = catalogPhrases(options.keepTogether ?? []);
  const intent = detectIntent(normalized, catalog);
  if (intent !== 'order') return { intent, items: [], excluded: [], unsure: [] };
  const parsed: ParsedText = { intent, items: [], excluded: [], unsure: [] };
  const questions: UnsurePhrase[] = [];
  for (const chunk of splitChunks(keepDottedNames(normalized, dotted))) {
    const tokens = tokenize(chunk);
    if (asksAQuestion(tokens)) {
      questions.push({ phrase: '', written: tokens.map((token) => token.text).join(' '), reason: 'question' });
      continue;
    }
    // "una margherita, no, una pepperoni": a "no" alone after items takes them back, and what
    // follows may replace them or come with them. Asked about, never ordered.
    if (parsed.items.length > 0 && isBareNo(tokens, catalog)) {
      const negation = tokens.map((token) => token.text).join(' ');
      parsed.unsure.push(...parsed.items.splice(0).map((item) => ({ phrase: item.phrase, written: `${item.phrase}, ${negation}`, reason: 'unknown' as const })));
      continue;
    }
    const reading = readChunkCounts(splitGluedNumbers(tokens, catalogWords), catalog);
    parsed.items.push(...reading.items);
    parsed.excluded.push(...reading.excluded);
    parsed.unsure.push(...reading.unsure);
  }
  // A question alone ("do you have tiramisu?") gets the menu. Beside an order ("2 margherita.
  // how much is it?") it is a doubt: the order is not placed, and the reply says why, where it
  // used to get the menu and leave the customer thinking the order was taken.
  const ordered = parsed.items.length + parsed.excluded.length + parsed.unsure.length;
  // A question a line break cut in two ("do you\nhave margherita?") is seen in the whole message.
  const asked = questions.length > 0 || asksAQuestion(tokenize(normalized));
  if (asked && (ordered === 0 || questions.length === 0)) return { intent: 'menu', items: [], excluded: [], unsure: [] };
  parsed.unsure.push(...questions);
  const phrases = ordered + questions.length;
  return parsed.items.length > MAX_ITEMS || phrases > MAX_PHRASES ? tooLong() : parsed;
}

/** A "no" said on its own, in the four languages; "nothing", "never" and the like refuse something instead. */
const BARE_NOS = toWordSet(['no', 'nope', 'nah', 'não', 'nao', 'nein', 'nö']);

/**
 * A part that is a "no" and filler only ("no", "no sorry", "nein, bitte"): not a closing ("no
 * más", "nothing else") and no product ("no más mate", with a Mate on the menu, refuses it).
 */
function isBareNo(tokens: readonly Token[], catalog: readonly WordPhrase[]): boolean {
  if (phraseAt(tokens, 0, CLOSING_PHRASES)) return false;
  let said = false;
  for (const [index, token] of tokens.entries()) {
    if (phraseAt(tokens, index, catalog)) return false;
    if (BARE_NOS.has(token.key)) said = true;
    else if (!FILLER_WORDS.has(token.key)) return false;
  }
  return said;
}

function asksAQuestion(tokens: readonly Token[]): boolean {
  return tokens.some((_token, index) => phraseAt(tokens, index, QUESTIONS));
}

function tooLong(): ParsedText {
  return { intent: 'order', items: [], excluded: [], unsure: [{ phrase: '', written: '', reason: 'too_long' }] };
}

/** A chunk whose counts cannot be read ("-1 coke", "margherita for 2") is one doubt, so nothing of it is ordered. */
function readChunkCounts(tokens: readonly Token[], catalog: readonly WordPhrase[]): ChunkReading {
  if (hasUnreadableCount(tokens, catalog)) {
    return { items: [], excluded: [], unsure: [{ phrase: '', written: tokens.map((token) => token.text).join(' '), reason: 'quantity' }] };
  }
  return holdCancelWords(readChunk(tokens, catalog));
}

const SENTENCE_END_INSIDE = /[.!?…]+\s/;

/**
 * A catalog name with a sentence end inside stays one item: "2 Dr. Pepper" would otherwise split
 * at "dr." into two phrases. Its punctuation goes (words are read without it anyway).
 */
function keepDottedNames(text: string, dotted: readonly string[]): string {
  let kept = text;
  for (const name of dotted) {
    if (kept.includes(name)) kept = kept.split(name).join(name.replace(/[.!?…]+(?=\s)/g, ''));
  }
  return kept;
}

function splitChunks(text: string): string[] {
  return text.split(/\r?\n/).flatMap((line) => line.replace(LIST_MARKER, '').split(SEPARATORS));
}

/**
 * Keywords count only as whole words, so "cancelled" or "statusbar" never trigger a command.
 * Cancel and order status need a short message (MAX_INTENT_WORDS). Cancel needs a plain cancel
 * (isPlainCancel); any other message with a cancel word is read as an order, where that word makes
 * a doubt. Status needs a status word, or a "where" word next to an "order" word ("when" and
 * "ready" only in a question), and no item (holdsItem). Menu needs every
 * word to be a menu word, a greeting or polite filler ("can I see the menu please", "hola"), so
 * "2 kids menu" stays an order.
 */
function detectIntent(normalized: string, catalog: readonly WordPhrase[]): Intent {
  const tokens = tokenize(normalized);
  const keys = tokens.map((token) => token.key);
  const short = keys.length > 0 && keys.length <= MAX_INTENT_WORDS;
  const has = (words: ReadonlySet<string>) => keys.some((key) => words.has(key));
  if (short && isPlainCancel(tokens, catalog) && !isAQuestion(normalized, tokens)) return 'cancel';
  // "when" and "ready" are conjunctions and adjectives too ("una margherita, cuando puedan"),
  // so they ask about the order only in a question; "where" beside "order" always did.
  const question = /[?¿]/.test(normalized);
  const asksAboutOrder = has(ORDER_WORDS) && (has(WHERE_WORDS) || (question && (has(WHEN_WORDS) || has(READY_WORDS))));
  if (short && (has(STATUS_WORDS) || asksAboutOrder) && !holdsItem(normalized, catalog)) return 'order_status';
  if (asksForMenu(tokens)) return 'menu';
  return 'order';
}

/** Words after a number that make it a time, not a count: "40 minutes", "vinte minutos", "2 Stunden". */
const TIME_UNITS = toWordSet([
  'min', 'mins', 'minute', 'minutes', 'hour', 'hours', 'hr', 'hrs', 'h', 'minuto', 'minutos', 'hora', 'horas',
  'minuten', 'stunde', 'stunden', 'std',
]);

/**
 * An item in a status question ("2 coke, where is my order?", "a Coca-Cola, where is my
 * order?"): a count of something, not an order's number ("#1234", "order 1234") nor a time
 * ("40 minutes"); or a catalog name in a part of the message of its own, apart from the words
 * that ask ("where is my pizza order?" asks about a pizza order). Taken for a status request,
 * the items were dropped without a word; as an order, the question in it is asked about.
 */
function holdsItem(normalized: string, catalog: readonly WordPhrase[]): boolean {
  return splitChunks(normalized).some((chunk) => {
    const tokens = tokenize(chunk);
    const asks = tokens.some(({ key }) => STATUS_WORDS.has(key) || WHERE_WORDS.has(key) || WHEN_WORDS.has(key) || READY_WORDS.has(key) || ORDER_WORDS.has(key));
    return tokens.some((_, index) => (!asks && phraseAt(tokens, index, catalog) !== undefined) || isCountOfSomething(tokens, index));
  });
}

function isCountOfSomething(tokens: readonly Token[], index: number): boolean {
  const quantity = readQuantity(tokens, index);
  if (quantity?.kind !== 'count' || quantity.article) return false;
  const before = tokens[index - 1]?.key ?? '';
  const after = tokens[index + quantity.used]?.key;
  return after !== undefined && !TIME_UNITS.has(after) && before !== 'number' && !ORDER_WORDS.has(before);
}

/** Words that open a question and never a request: "do I have to cancel", "should I cancel". */
const QUESTION_OPENERS = toWordSet(['do', 'does', 'did', 'should', 'shall', 'must']);
/**
 * The asker as the subject: "can I", "can we", "puedo", "ich", "wir". "Can you cancel my order?"
 * asks the shop to. Only filler words: any other word ("posso", "muss") already keeps a message
 * from being a plain cancel.
 */
const ASKING_FOR_ONESELF = toWordSet(['i', 'we', 'yo', 'puedo', 'eu', 'nos', 'ich', 'wir']);
/** Whether cancelling is possible at all: "dá pra cancelar?", "tem como cancelar?", "is it possible to cancel?". */
const ASKING_IF_POSSIBLE = toPhrases(['da pra', 'tem como', 'is it possible', 'es posible', 'se puede', 'e possivel', 'ist es moglich', 'geht das']);

/**
 * A cancel asked about ("do I have to cancel?", "¿puedo cancelar?", "can I still cancel?") is not
 * one: cancelling cannot be undone, so a question about the asker's own cancelling, or an opening
 * only questions take, is answered with how to cancel. A request put as a question ("can you
 * cancel my order?", "¿me puedes cancelar el pedido?") still cancels.
 */
function isAQuestion(normalized: string, tokens: readonly Token[]): boolean {
  if (QUESTION_OPENERS.has(tokens[0]?.key ?? '')) return true;
  return /[?¿]/.test(normalized)
    && tokens.some((token, index) => ASKING_FOR_ONESELF.has(token.key) || phraseAt(tokens, index, ASKING_IF_POSSIBLE) !== undefined);
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

/**
 * The catalog names and aliases as the parser reads them. Built once per list of terms: the
 * catalogue cache hands out the same array until the catalogue changes, and building it for
 * every message cost 30 ms of CPU a message with 5,000 aliases (0.6 ms once kept, the reading itself).
 */
export interface CatalogPhrases {
  /** As folded words, longest first. */
  phrases: WordPhrase[];
  words: ReadonlySet<string>;
  /** The names and aliases of a single word ("super"), folded. */
  oneWordNames: ReadonlySet<string>;
  /** Names with a sentence end inside ("Dr. Pepper", "St. Louis ribs"), as normalized text, longest first. */
  dotted: readonly string[];
}

const phrasesOfTerms = new WeakMap<readonly string[], CatalogPhrases>();

export function catalogPhrases(terms: readonly string[]): CatalogPhrases {
  const known = phrasesOfTerms.get(terms);
  if (known) return known;
  const names = terms
    .map((term) => tokenize(normalizeText(term).replace(SYMBOL_CONJUNCTIONS, ' and ')).map((token: Token) => token.key))
    .filter((words) => words.length > 0);
  const whole = new Set(names.map((words) => words.join(' ')));
  const phrases = [...names, ...names.flatMap((name) => partsFromNumberWords(name, whole))].sort((a, b) => b.length - a.length);
  const dotted = terms
    .map((term) => normalizeText(term).replace(SYMBOL_CONJUNCTIONS, ' and ').trim())
    .filter((term) => SENTENCE_END_INSIDE.test(term))
    .sort((a, b) => b.length - a.length);
  const oneWordNames = new Set(phrases.filter((words) => words.length === 1).map((words) => words[0]!));
  const built = { phrases, words: new Set(phrases.flat()), oneWordNames, dotted };
  phrasesOfTerms.set(terms, built);
  return built;
}

/**
 * The runs of a name's words that begin with a number word ("cuatro quesos" of "Pizza Cuatro
 * Quesos", "four cheese" of "Four Cheese Pizza"), kept together as the whole name is: read as a
 * count, "cuatro quesos por favor" ordered four of the pizza, its "quesos" alone matching the
 * name. None with a digit ("Pack 6 Beers", "Coca-Cola x 6": "coca x 6" is as likely six cokes)
 * nor an article. A run whose words after the number begin another name or alias reads two
 * ways ("tres leches", beside a Leche aliased "leches"; "two tacos", beside a Taco aliased
 * "tacos" and a "Two Tacos Combo"): it is marked so, and asked about.
 */
function partsFromNumberWords(name: WordPhrase, wholeNames: ReadonlySet<string>): WordPhrase[] {
  const tokens = name.map((key) => ({ key, text: key }));
  const parts: WordPhrase[] = [];
  for (let start = 0; start < name.length - 1; start += 1) {
    const count = readQuantity(tokens, start);
    if (ARTICLES.has(name[start]!) || count?.kind !== 'count') continue;
    // Not from inside a count that begins earlier: "dozen donuts" of "Half Dozen Donuts" would
    // read "a dozen donuts" as one half-dozen box.
    if (Array.from({ length: start }, (_, earlier) => readQuantity(tokens, earlier)).some((read, earlier) => read !== undefined && earlier + read.used > start)) continue;
    // Past the words the count itself takes: "docena de", of "Docena de Medialunas", is only a count.
    for (let end = start + count.used + 1; end <= name.length && end - start < name.length; end += 1) {
      const run = name.slice(start, end);
      if (run.some((word) => /\d/.test(word))) break;
      const namesAnother = run.slice(1).some((_, length) => wholeNames.has(run.slice(1, length + 2).join(' ')));
      parts.push(namesAnother ? readsTwoWays(run) : run);
    }
  }
  return parts;
}
