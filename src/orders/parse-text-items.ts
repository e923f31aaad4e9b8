import { FILLER_WORDS } from './parse-text-filler';
import { readQuantity, type QuantityRead } from './parse-text-quantity';
import { phraseAt, type Token, type WordPhrase } from './parse-text-tokens';
import { ALTERNATIVES, AMBIGUOUS_OR, CONJUNCTIONS, CONTRASTS, NEGATIONS, UNSURE_WORDS } from './parse-text-words';

export interface ItemPhrase {
  /** 1..n as written; the caller refuses anything over its maximum and asks again. */
  quantity: number;
  /** The product words, lower-cased, accents kept, quantity and filler words removed; never empty. */
  phrase: string;
}

/** Something the customer said not to include ("no coke", "0 cola", "sin cebolla"). */
export interface ExcludedPhrase {
  phrase: string;
  /** As written, negation included, for the clarification when it does not name a product. */
  written: string;
}

/** A part the parser cannot read with certainty: the message gets a clarification, not an order. */
export interface UnsurePhrase {
  /** The product words, possibly empty, to suggest candidates. */
  phrase: string;
  written: string;
  reason: 'quantity' | 'unknown';
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
}

type Element =
  | { kind: 'word'; text: string }
  | { kind: 'quantity'; text: string; read: QuantityRead }
  | { kind: 'separator' | 'contrast' | 'alternative' | 'unsure' }
  | { kind: 'negation'; text: string };

/** Reads one sentence-like chunk (no commas or sentence ends inside) into items, exclusions and doubts. */
export function readChunk(tokens: readonly Token[], catalogPhrases: readonly WordPhrase[]): ChunkReading {
  const reading: ChunkReading = { items: [], excluded: [], unsure: [] };
  let part: Element[] = [];
  let negation: Negation | undefined;
  const flush = () => {
    readPart(part, negation, reading);
    part = [];
    if (negation) negation.carried = true;
  };
  for (const element of scan(tokens, catalogPhrases)) {
    if (element.kind === 'separator') flush();
    else if (element.kind === 'contrast') {
      flush();
      negation = undefined;
    } else if (element.kind === 'negation') {
      flush();
      negation = { text: element.text, carried: false };
    } else part.push(element);
  }
  flush();
  return reading;
}

/** Classifies each token; catalog phrases win, so "fish and chips" or "coke zero" are never split or counted. */
function scan(tokens: readonly Token[], catalogPhrases: readonly WordPhrase[]): Element[] {
  const elements: Element[] = [];
  const textOf = (start: number, length: number) => tokens.slice(start, start + length).map((t) => t.text).join(' ');
  for (let index = 0; index < tokens.length; ) {
    const key = tokens[index]!.key;
    const catalog = phraseAt(tokens, index, catalogPhrases);
    const negation = catalog ? undefined : phraseAt(tokens, index, NEGATIONS);
    const contrast = catalog || negation ? undefined : phraseAt(tokens, index, CONTRASTS);
    const unsure = catalog ? undefined : phraseAt(tokens, index, UNSURE_WORDS);
    const quantity = catalog ? undefined : readQuantity(tokens, index);
    let used = 1;
    if (catalog) {
      used = catalog.length;
      elements.push({ kind: 'word', text: textOf(index, used) });
    } else if (negation) {
      used = negation.length;
      elements.push({ kind: 'negation', text: textOf(index, used) });
    } else if (contrast) {
      used = contrast.length;
      elements.push({ kind: 'contrast' });
    } else if (CONJUNCTIONS.has(key)) elements.push({ kind: 'separator' });
    else if (ALTERNATIVES.has(key) || (key === AMBIGUOUS_OR && isQuantityNear(tokens, index))) elements.push({ kind: 'alternative' });
    else if (unsure) {
      used = unsure.length;
      elements.push({ kind: 'unsure' });
    } else if (quantity) {
      used = quantity.used;
      elements.push({ kind: 'quantity', text: textOf(index, used), read: quantity });
    } else if (!FILLER_WORDS.has(key)) elements.push({ kind: 'word', text: tokens[index]!.text });
    index += used;
  }
  return elements;
}

function isQuantityNear(tokens: readonly Token[], index: number): boolean {
  return [index - 1, index + 1].some((near) => near >= 0 && near < tokens.length && readQuantity(tokens, near) !== undefined);
}

interface Group {
  quantity?: Extract<Element, { kind: 'quantity' }>;
  words: string[];
}

/**
 * A part (between separators) holds one or more items: "2 coke 2 margherita" (each count starts an
 * item), "margherita x2 coke x3" (each count ends one), or a single item without a count (1). Counts
 * in the middle of words ("coke 2 margherita"), alternatives and hedges make the part unsure.
 */
function readPart(part: readonly Element[], negation: Negation | undefined, reading: ChunkReading): void {
  if (part.length === 0) return;
  const written = [negation?.text, ...part.map((element) => ('text' in element ? element.text : ''))].filter(Boolean).join(' ');
  const words = part.flatMap((element) => (element.kind === 'word' ? [element.text] : []));
  const doubt = (reason: UnsurePhrase['reason']) => {
    reading.unsure.push({ phrase: words.join(' '), written, reason });
  };
  if (part.some((element) => element.kind === 'alternative' || element.kind === 'unsure')) return doubt('unknown');
  const groups = groupByQuantity(part);
  if (!groups) return doubt('quantity');
  for (const group of groups) {
    const read = group.quantity?.read;
    const groupWritten = [negation?.text, group.quantity?.text, ...group.words].filter(Boolean).join(' ');
    const phrase = group.words.join(' ');
    if (read?.kind === 'vague') reading.unsure.push({ phrase, written: groupWritten, reason: 'quantity' });
    else if (group.words.length === 0) {
      if (!read?.article) reading.unsure.push({ phrase, written: groupWritten, reason: 'quantity' });
    } else if (negation !== undefined) {
      // "no coke" and "no quiero una coca" exclude; "no 2 margherita", "not 3" and "no coke and a
      // margherita" may be corrections or new items: they cannot be read safely.
      const counted = read !== undefined && read.value > 0 && (!read.article || negation.carried);
      if (counted) reading.unsure.push({ phrase, written: groupWritten, reason: 'quantity' });
      else reading.excluded.push({ phrase, written: groupWritten });
    } else if (read?.value === 0) reading.excluded.push({ phrase, written: groupWritten });
    else reading.items.push({ quantity: read?.value ?? 1, phrase });
  }
}

function groupByQuantity(part: readonly Element[]): Group[] | undefined {
  const counts = part.filter((element) => element.kind === 'quantity').length;
  const first = part[0]!;
  const last = part.at(-1)!;
  const groups: Group[] = [];
  if (counts === 0 || first.kind === 'quantity') {
    for (const element of part) {
      if (element.kind === 'quantity') groups.push({ quantity: element, words: [] });
      else if (element.kind === 'word') (groups.at(-1) ?? groups[groups.push({ words: [] }) - 1]!).words.push(element.text);
    }
    return groups;
  }
  if (last.kind !== 'quantity') return undefined;
  let words: string[] = [];
  for (const element of part) {
    if (element.kind === 'word') words.push(element.text);
    else if (element.kind === 'quantity') {
      groups.push({ quantity: element, words });
      words = [];
    }
  }
  return groups;
}
