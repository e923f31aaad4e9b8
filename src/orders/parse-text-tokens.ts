/** One word as written (`text`, lower-cased, accents kept) and folded for comparison (`key`, accents removed). */
export interface Token {
  text: string;
  key: string;
}

/** A phrase of folded words, compared token by token. */
export type WordPhrase = readonly string[];

// Emoji, skin tones, flags and the joiners that glue them together. Keycap digits ("2️⃣") keep their digit.
const EMOJI = /[\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Regional_Indicator}\u200d\ufe0f\u20e3]/gu;
// "hiii", "holaaa", "pleaseee": three or more of the same letter are one (no catalog word needs three).
const STRETCHED_LETTERS = /(\p{L})\1{2,}/gu;
// Hyphen-minus, the Unicode hyphens and dashes (phones turn "-" into "–"), the minus sign, small and full-width minus.
const MINUS = '[-\\u2010-\\u2015\\u2212\\ufe63\\uff0d]';
// A minus before a digit is kept, so that "-1 coke" is not read as "1 coke"; and so is a currency
// sign, so that a price ("tiramisu 4€", "4 €") is not read as a count ("4 tiramisu").
const EDGE_PUNCTUATION = new RegExp(`^(?:(?!${MINUS}\\d)[^\\p{L}\\p{M}\\p{N}\\p{Sc}])+|[^\\p{L}\\p{M}\\p{N}\\p{Sc}]+$`, 'gu');
/** A word that starts with a minus and a digit: a negative count, or a correction ("-1 coke", "x-2"). */
export const SIGNED_NUMBER = new RegExp(`^x?${MINUS}\\d`, 'u');

/**
 * NFC, lower-cased text without emoji or stretched letters; curly apostrophes and "×" are made plain.
 * Not capped: the caller refuses text over MAX_TEXT_CHARS before it gets here.
 */
export function normalizeText(text: string): string {
  return text
    .normalize('NFC')
    .toLowerCase()
    .replace(EMOJI, ' ')
    .replace(/[’‘`´]/g, "'")
    .replace(/×/g, 'x')
    .replace(/#\s*(?=\d)/g, ' number ')
    .replace(STRETCHED_LETTERS, '$1');
}

export function foldAccents(word: string): string {
  return word.normalize('NFD').replace(/\p{M}/gu, '');
}

/** Words split on whitespace, with punctuation trimmed from both ends; words that were only punctuation are gone. */
export function tokenize(text: string): Token[] {
  return text
    .split(/\s+/)
    .map((word) => word.replace(EDGE_PUNCTUATION, ''))
    .filter((word) => word.length > 0)
    .map((word) => ({ text: word, key: foldAccents(word) }));
}

/** Folds and splits each entry, longest first so "ich hätte gerne" wins over "ich hätte". */
export function toPhrases(entries: readonly string[]): WordPhrase[] {
  return entries.map((entry) => foldAccents(entry).split(' ')).sort((a, b) => b.length - a.length);
}

export function toWordSet(entries: readonly string[]): ReadonlySet<string> {
  return new Set(entries.map(foldAccents));
}

/**
 * Catalog phrases that read two ways at once: the words of one name ("tres leches" of "Torta
 * Tres Leches"), or a count of another product ("leches", a Leche's alias). Kept together, and
 * asked about, never ordered. Marked by identity: a catalogue's phrases are built once.
 */
const twoWayPhrases = new WeakSet<WordPhrase>();

export function readsTwoWays(phrase: WordPhrase): WordPhrase {
  twoWayPhrases.add(phrase);
  return phrase;
}

export function isReadTwoWays(phrase: WordPhrase): boolean {
  return twoWayPhrases.has(phrase);
}

/** The longest phrase that starts at `index`, if any. */
export function phraseAt(tokens: readonly Token[], index: number, phrases: readonly WordPhrase[]): WordPhrase | undefined {
  return phrases.find((phrase) => phrase.every((word, offset) => tokens[index + offset]?.key === word));
}

// "2margherita", "3xcoke" and "margherita2": a count glued to a word of at least three letters.
// Shorter ("7up") or unit-like ("500ml", "33cl") tokens stay whole, as do catalog words.
const GLUED_LEADING = /^(\d+x?)(\p{L}{3,})$/u;
const GLUED_TRAILING = /^(\p{L}{3,})(x?\d+)$/u;
const GLUED_UNITS = /^(ml|cl|ltr?|litres?|liters?|litros?|gr|kg|oz|cm)$/;

/** Separates a count glued to a word, unless the whole token is a catalog word. */
export function splitGluedNumbers(tokens: readonly Token[], catalogWords: ReadonlySet<string>): Token[] {
  return tokens.flatMap((token) => {
    if (catalogWords.has(token.key)) return [token];
    const leading = GLUED_LEADING.exec(token.text);
    if (leading && !GLUED_UNITS.test(leading[2]!)) return [toToken(leading[1]!), toToken(leading[2]!)];
    const trailing = GLUED_TRAILING.exec(token.text);
    if (trailing) return [toToken(trailing[1]!), toToken(trailing[2]!)];
    return [token];
  });
}

function toToken(text: string): Token {
  return { text, key: foldAccents(text) };
}
