import { phraseAt, toPhrases, type Token, type WordPhrase } from './parse-text-tokens';

const NUMBER_WORDS: Record<string, number> = {
  a: 1, an: 1, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  'a couple of': 2, 'a couple': 2, 'couple of': 2,
  un: 1, uno: 1, una: 1, dos: 2, tres: 3, cuatro: 4, cinco: 5, seis: 6, siete: 7, ocho: 8, nueve: 9, diez: 10,
  'un par de': 2,
  um: 1, uma: 1, dois: 2, duas: 2, 'três': 3, quatro: 4, sete: 7, oito: 8, nove: 9, dez: 10,
  'um par de': 2,
  ein: 1, eine: 1, einen: 1, eins: 1, zwei: 2, zwo: 2, drei: 3, vier: 4, 'fünf': 5, fuenf: 5,
  sechs: 6, sieben: 7, acht: 8, neun: 9, zehn: 10,
};

const NUMBER_PHRASES: readonly WordPhrase[] = toPhrases(Object.keys(NUMBER_WORDS));
const NUMBER_VALUES = new Map(
  Object.entries(NUMBER_WORDS).map(([words, value]) => [toPhrases([words])[0]!.join(' '), value]),
);

export interface Quantified {
  quantity: number;
  rest: Token[];
}

/**
 * Takes the quantity from the start ("2", "2x", "2 x", "x2", "two", "dos", "zwei") or, failing that,
 * from the end ("x2", "x 2", "2x") of an item phrase; without one the quantity is 1. A phrase with both
 * ("2 margherita x3") keeps the leading one and leaves "x3" in the phrase, so the match fails visibly.
 */
export function takeQuantity(tokens: readonly Token[]): Quantified {
  const leading = leadingQuantity(tokens);
  if (leading) return { quantity: leading.quantity, rest: tokens.slice(leading.used) };
  const trailing = trailingQuantity(tokens);
  if (trailing) return { quantity: trailing.quantity, rest: tokens.slice(0, tokens.length - trailing.used) };
  return { quantity: 1, rest: [...tokens] };
}

interface Found {
  quantity: number;
  /** How many tokens spelled the quantity. */
  used: number;
}

function leadingQuantity(tokens: readonly Token[]): Found | undefined {
  const first = tokens[0]?.key ?? '';
  if (/^\d+$/.test(first)) return { quantity: toQuantity(first), used: tokens[1]?.key === 'x' ? 2 : 1 };
  const marked = /^(?:(\d+)x|x(\d+))$/.exec(first);
  if (marked) return { quantity: toQuantity(marked[1] ?? marked[2]!), used: 1 };
  const words = phraseAt(tokens, 0, NUMBER_PHRASES);
  if (words) return { quantity: NUMBER_VALUES.get(words.join(' '))!, used: words.length };
  return undefined;
}

function trailingQuantity(tokens: readonly Token[]): Found | undefined {
  const last = tokens.at(-1)?.key ?? '';
  const marked = /^(?:x(\d+)|(\d+)x)$/.exec(last);
  if (marked) return { quantity: toQuantity(marked[1] ?? marked[2]!), used: 1 };
  if (/^\d+$/.test(last) && tokens.at(-2)?.key === 'x') return { quantity: toQuantity(last), used: 2 };
  return undefined;
}

/** Kept as written (the caller refuses anything outside 1..99), only bounded so that it stays a safe integer. */
function toQuantity(digits: string): number {
  return Math.min(Number(digits), Number.MAX_SAFE_INTEGER);
}
