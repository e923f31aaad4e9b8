import { COURTESY_PHRASES, FILLER_WORDS } from './parse-text-filler';
import { DOZEN_WORDS, QUANTITY_LINKS, readQuantity, timeOfDayLength, type QuantityRead } from './parse-text-quantity';
import { foldAccents, isReadTwoWays, phraseAt, toWordSet, type Token, type WordPhrase } from './parse-text-tokens';
import { ALTERNATIVES, AMBIGUOUS_OR, CLOSING_PHRASES, CONJUNCTIONS, CONTRASTS, CORRECTIONS, NEGATIONS, UNSURE_WORDS } from './parse-text-words';

export interface ItemPhrase {
  /** 1..n as written; the caller refuses anything over its maximum and asks again. */
  quantity: number;
  /** The product words, lower-cased, accents kept, quantity and filler words removed; never empty. */
  phrase: string;
  /** Counted in dozens ("2 dozen", "dos docenas"): of a product sold by the dozen, boxes or pieces? */
  inDozens?: true;
}

/** Something the customer said not to include ("no coke", "0 cola", "sin cebolla"). */
export interface ExcludedPhrase {
  phrase: string;
  /** As written, negation included, for the clarification when it does not name a product. */
  written: string;
  /**
   * Said right after an item, in its part ("2 pepperoni sin ajo", "2 pepperoni without cheese"):
   * it may change that item rather than refuse a product, so it must name one exactly.
   */
  afterItem?: true;
}

/** A part the parser cannot read with certainty: the message gets a clarification, not an order. */
export interface UnsurePhrase {
  /** The product words, possibly empty, to suggest candidates. */
  phrase: string;
  written: string;
  /** A count that cannot be read; no product known; a cancel said beside an order or negated; a message too long to read whole; a question beside an order. */
  reason: 'quantity' | 'unknown' | 'cancel' | 'too_long' | 'question';
}

export interface ChunkReading {
  items: ItemPhrase[];
  excluded: ExcludedPhrase[];
  unsure: UnsurePhrase[];
}

/** A negation in force; `carried` once a conjunction has passed ("no coke and fanta"). */
interface Negation {
  text: string;
  carried: boolean;
  /** How many items the chunk held before the words just ahead of the negation were read. */
  itemsBefore: number;
  /** Items were read from the words just ahead of it: "coca não", not "não", nor "no quiero coca ni". */
  afterItems: boolean;
}

type Element =
  | { kind: 'word' | 'negation' | 'alternative' | 'unsure'; text: string }
  | { kind: 'quantity'; text: string; read: QuantityRead }
  | { kind: 'contrast'; key: string }
  | { kind: 'separator' | 'filler' };

/**
 * Portuguese "mas" is "but"; Spanish "más" is "more", and is often typed without its accent.
 * Right after a negation that opens its part it is "more": "no más coca", "no quiero mas coca"
 * refuse the coke. After words, it is "but": "coca não mas uma margherita".
 */
const BUT_OR_MORE = 'mas';

/** "with" in the four languages: filler elsewhere ("a coke with ice" asks about "ice" anyway). */
const WITH_WORDS = toWordSet(['with', 'w', 'con', 'com', 'mit']);

/** Reads one sentence-like chunk (no commas or sentence ends inside) into items, exclusions and doubts. */
export function readChunk(tokens: readonly Token[], catalogPhrases: readonly WordPhrase[]): ChunkReading {
  const reading: ChunkReading = { items: [], excluded: [], unsure: [] };
  let part: Element[] = [];
  let negation: Negation | undefined;
  const flush = () => {
    if (negation && !negation.carried && isEmpty(part)) {
      // Nothing after the negation: it refuses what came before it ("coca no", "Cola nicht"),
      // which was read as items a moment ago. Asked about, never ordered.
      doubtItemsSince(reading, negation);
      negation = undefined;
    }
    readPart(part, negation, reading);
    part = [];
    if (negation) negation.carried = true;
  };
  for (const element of scan(tokens, catalogPhrases)) {
    if (element.kind === 'separator') flush();
    else if (element.kind === 'contrast') {
      if (element.key === BUT_OR_MORE && negation && !negation.carried && !negation.afterItems && isEmpty(part)) continue;
      flush();
      negation = undefined;
    } else if (element.kind === 'negation') {
      const itemsBefore = reading.items.length;
      flush();
      negation = { text: element.text, carried: false, itemsBefore, afterItems: reading.items.length > itemsBefore };
    } else part.push(element);
  }
  flush();
  return reading;
}

const isEmpty = (part: readonly Element[]) => part.every((element) => element.kind === 'filler');

/** Turns the items read since the negation's words began into doubts. */
function doubtItemsSince(reading: ChunkReading, negation: Negation): void {
  for (const item of reading.items.splice(negation.itemsBefore)) {
    reading.unsure.push({ phrase: item.phrase, written: `${item.phrase} ${negation.text}`, reason: 'unknown' });
  }
}

/** Classifies each token; catalog phrases win, so "fish and chips" or "coke zero" are never split or counted. */
function scan(tokens: readonly Token[], catalogPhrases: readonly WordPhrase[]): Element[] {
  const elements: Element[] = [];
  for (let index = 0; index < tokens.length; ) {
    const { element, used } = classify(tokens, index, catalogPhrases);
    if (element) elements.push(element);
    index += used;
  }
  return elements;
}

/** One element (or none, for courtesy and times) and how many tokens it spans; the first reading that applies wins. */
function classify(tokens: readonly Token[], index: number, catalogPhrases: readonly WordPhrase[]): { element?: Element; used: number } {
  const key = tokens[index]!.key;
  const text = (length: number) => tokens.slice(index, index + length).map((t) => t.text).join(' ');
  const catalog = phraseAt(tokens, index, catalogPhrases);
  if (catalog) return { element: { kind: isReadTwoWays(catalog) ? 'unsure' : 'word', text: text(catalog.length) }, used: catalog.length };
  // "una coca no más", "2 pizzas nada mais", "nothing else": the order ends here, nothing refused.
  const closing = phraseAt(tokens, index, CLOSING_PHRASES);
  if (closing && onlyFillerFrom(tokens, index + closing.length, catalogPhrases)) return { used: closing.length };
  const negation = phraseAt(tokens, index, NEGATIONS);
  if (negation) return { element: { kind: 'negation', text: text(negation.length) }, used: negation.length };
  // "más" as written is Spanish "more", filler; only "mas" may be Portuguese "but".
  const contrast = tokens[index]!.text === 'más' ? undefined : phraseAt(tokens, index, CONTRASTS);
  if (contrast) return { element: { kind: 'contrast', key }, used: contrast.length };
  const skipped = phraseAt(tokens, index, COURTESY_PHRASES)?.length ?? timeOfDayLength(tokens, index);
  if (skipped) return { used: skipped };
  // Before conjunctions, so that "una docena y media" is one count.
  const quantity = countBeforeName(tokens, index, catalogPhrases);
  if (quantity) return { element: { kind: 'quantity', text: text(quantity.used), read: quantity }, used: quantity.used };
  if (CONJUNCTIONS.has(key)) return { element: { kind: 'separator' }, used: 1 };
  if (ALTERNATIVES.has(key) || (key === AMBIGUOUS_OR && isQuantityNear(tokens, index))) {
    return { element: { kind: 'alternative', text: text(1) }, used: 1 };
  }
  // "make it 3", "make that pepperoni" correct an order already placed; "make it quick" does not.
  const correction = phraseAt(tokens, index, CORRECTIONS);
  if (correction && !onlyFillerFrom(tokens, index + correction.length, catalogPhrases)) {
    return { element: { kind: 'unsure', text: text(correction.length) }, used: correction.length };
  }
  const unsure = phraseAt(tokens, index, UNSURE_WORDS);
  if (unsure) return { element: { kind: 'unsure', text: text(unsure.length) }, used: unsure.length };
  // "2 margherita, one with pepperoni": a count with "with" and no product between changes one of
  // the products before it; read as a count of what follows, it would order a pepperoni pizza.
  if (WITH_WORDS.has(key) && index > 0 && readQuantity(tokens, index - 1)?.kind === 'count') {
    return { element: { kind: 'unsure', text: text(1) }, used: 1 };
  }
  return { element: { kind: FILLER_WORDS.has(key) ? 'filler' : 'word', text: text(1) }, used: 1 };
}

/**
 * The count at `index`, ending where a catalog name begins: "a dozen donuts", with "Dozen
 * Donuts" on the menu, is one box ("a", then the name), where reading "a dozen" took the name's
 * first word and ordered twelve boxes. Unsure instead: a count that cannot end there ("half a",
 * with "A Dozen Roses"), and a name that begins at the count's link when another name begins
 * after it ("2 x salada", with an "X Salada" and a Salada). A count in dozens of a product sold
 * by the dozen is asked about once matched (decide-text.ts).
 */
function countBeforeName(tokens: readonly Token[], index: number, catalogPhrases: readonly WordPhrase[]): QuantityRead | undefined {
  const quantity = readQuantity(tokens, index);
  if (!quantity) return undefined;
  for (let length = 1; length < quantity.used; length += 1) {
    if (!phraseAt(tokens, index + length, catalogPhrases)) continue;
    const atLink = QUANTITY_LINKS.has(tokens[index + length]!.key);
    // "2 x salada" with an X Salada alone is two of it, as before: only one name is there to read.
    if (atLink && !phraseAt(tokens, index + length + 1, catalogPhrases)) return quantity;
    const shorter = atLink ? undefined : readQuantity(tokens.slice(0, index + length), index);
    return shorter?.used === length ? shorter : { kind: 'vague', used: length };
  }
  return quantity;
}

/** Whether a count, as written, is in dozens. */
function countsDozens(written: string | undefined): boolean {
  return written !== undefined && written.split(' ').some((word) => DOZEN_WORDS.has(foldAccents(word)));
}

/** Nothing but filler from `index` to the chunk's end: no word of the catalog ("Mate" is also filler), no count. */
function onlyFillerFrom(tokens: readonly Token[], index: number, catalogPhrases: readonly WordPhrase[]): boolean {
  for (let at = index; at < tokens.length; at += 1) {
    if (!FILLER_WORDS.has(tokens[at]!.key) || phraseAt(tokens, at, catalogPhrases)) return false;
  }
  return true;
}

function isQuantityNear(tokens: readonly Token[], index: number): boolean {
  return [index - 1, index + 1].some((near) => near >= 0 && near < tokens.length && readQuantity(tokens, near) !== undefined);
}

interface Group {
  quantity?: Extract<Element, { kind: 'quantity' }>;
  words: string[];
  /** Filler words after the count: "an order" says nothing, a lone "noch eine" ("one more") is unsure. */
  fillers: number;
}

/**
 * A part (between separators) holds one or more items: "2 coke 2 margherita" (each count starts an
 * item), "margherita x2 coke x3" (each count ends one), or a single item without a count (1). Counts
 * in the middle of words ("coke 2 margherita"), alternatives and hedges make the part unsure.
 */
function readPart(part: readonly Element[], negation: Negation | undefined, reading: ChunkReading): void {
  if (part.every((element) => element.kind === 'filler')) return;
  const written = [negation?.text, ...part.map((element) => (element.kind !== 'filler' && 'text' in element ? element.text : ''))]
    .filter(Boolean)
    .join(' ');
  const words = part.flatMap((element) => (element.kind === 'word' ? [element.text] : []));
  const doubt = (reason: UnsurePhrase['reason']) => {
    reading.unsure.push({ phrase: words.join(' '), written, reason });
  };
  if (part.some((element) => element.kind === 'alternative' || element.kind === 'unsure')) return doubt('unknown');
  const groups = groupByQuantity(part);
  if (!groups) return doubt('quantity');
  for (const group of groups) readGroup(group, negation, reading);
}

function readGroup(group: Group, negation: Negation | undefined, reading: ChunkReading): void {
  const read = group.quantity?.read;
  const written = [negation?.text, group.quantity?.text, ...group.words].filter(Boolean).join(' ');
  const phrase = group.words.join(' ');
  const doubt = () => {
    reading.unsure.push({ phrase, written, reason: 'quantity' });
  };
  // "margherita margherita": one, two, or a slip? Ask.
  if (read?.kind === 'vague' || new Set(group.words).size < group.words.length) return doubt();
  // A count with no product: "2 please", "x3", "y otra"; an article before filler ("an order") says nothing.
  if (group.words.length === 0) return read?.article && group.fillers > 0 ? undefined : doubt();
  if (negation !== undefined) {
    // "no coke" and "no quiero una coca" exclude; "no 2 margherita", "not 3" and "no coke and a
    // margherita" may be corrections or new items: they cannot be read safely.
    if (read !== undefined && read.value > 0 && (!read.article || negation.carried)) return doubt();
    reading.excluded.push(negation.afterItems && !negation.carried ? { phrase, written, afterItem: true } : { phrase, written });
  } else if (read?.value === 0) reading.excluded.push({ phrase, written });
  else reading.items.push({ quantity: read?.value ?? 1, phrase, ...(countsDozens(group.quantity?.text) ? { inDozens: true as const } : {}) });
}

/**
 * Number words that, after a product's words, are as likely a word of the product: Portuguese
 * "doce" is "sweet" ("pão doce", "empanada doce"), Spanish "doce" is twelve. Before them
 * ("doce empanadas") they count.
 */
const NOT_COUNTS_AFTER_WORDS = new Set(['doce']);

function groupByQuantity(part: readonly Element[]): Group[] | undefined {
  const counts = part.filter((element) => element.kind === 'quantity').length;
  const meaningful = part.filter((element) => element.kind !== 'filler');
  const groups: Group[] = [];
  if (counts === 0 || meaningful[0]!.kind === 'quantity') {
    for (const element of part) {
      if (element.kind === 'quantity') groups.push({ quantity: element, words: [], fillers: 0 });
      else if (element.kind === 'word') (groups.at(-1) ?? groups[groups.push({ words: [], fillers: 0 }) - 1]!).words.push(element.text);
      else if (element.kind === 'filler' && groups.length > 0) groups.at(-1)!.fillers += 1;
    }
    return groups;
  }
  if (meaningful.at(-1)!.kind !== 'quantity') return undefined;
  let words: string[] = [];
  for (const element of part) {
    if (element.kind === 'word') words.push(element.text);
    else if (element.kind === 'quantity' && NOT_COUNTS_AFTER_WORDS.has(element.text)) return undefined;
    else if (element.kind === 'quantity') {
      groups.push({ quantity: element, words, fillers: 0 });
      words = [];
    }
  }
  return groups;
}
