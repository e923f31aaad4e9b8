import { TIME_OF_DAY, TIME_PREPOSITIONS, TIME_SUFFIXES } from './parse-text-filler';
import { phraseAt, toPhrases, type Token, type WordPhrase } from './parse-text-tokens';

const NUMBER_WORDS: Record<string, number> = {
  a: 1, an: 1, one: 1, another: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8,
  nine: 9, ten: 10, eleven: 11, twelve: 12,
  'a couple of': 2, 'a couple': 2, 'couple of': 2, 'a pair of': 2,
  un: 1, uno: 1, una: 1, otra: 1, otro: 1, dos: 2, tres: 3, cuatro: 4, cinco: 5, seis: 6, siete: 7, ocho: 8,
  nueve: 9, diez: 10, doce: 12, 'un par de': 2,
  um: 1, uma: 1, outra: 1, outro: 1, dois: 2, duas: 2, 'três': 3, quatro: 4, sete: 7, oito: 8, nove: 9, dez: 10,
  onze: 11, doze: 12, 'um par de': 2,
  ein: 1, eine: 1, einen: 1, einem: 1, eins: 1, zwei: 2, zwo: 2, drei: 3, vier: 4, 'fünf': 5, fuenf: 5,
  sechs: 6, sieben: 7, acht: 8, neun: 9, zehn: 10, elf: 11, 'zwölf': 12, zwoelf: 12,
  // Thirteen to twenty; Spanish "once" (11) is left out, as English "once" would read as a count.
  thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18, nineteen: 19, twenty: 20,
  trece: 13, catorce: 14, quince: 15, 'dieciséis': 16, dieciseis: 16, diecisiete: 17, dieciocho: 18, diecinueve: 19, veinte: 20,
  treze: 13, catorze: 14, quatorze: 14, quinze: 15, dezesseis: 16, dezasseis: 16, dezessete: 17, dezassete: 17, dezoito: 18,
  dezenove: 19, dezanove: 19, vinte: 20,
  dreizehn: 13, vierzehn: 14, 'fünfzehn': 15, fuenfzehn: 15, sechzehn: 16, siebzehn: 17, achtzehn: 18, neunzehn: 19, zwanzig: 20,
  // German orders count in "-mal": "einmal Margherita und zweimal Cola".
  einmal: 1, zweimal: 2, zwomal: 2, dreimal: 3, viermal: 4, 'fünfmal': 5, fuenfmal: 5, sechsmal: 6, siebenmal: 7, achtmal: 8,
  neunmal: 9, zehnmal: 10, elfmal: 11, 'zwölfmal': 12, zwoelfmal: 12,
  // Dozens and half dozens, with or without the article; "2 dozen" multiplies (see DOZEN_WORDS).
  dozen: 12, 'a dozen': 12, 'one dozen': 12, 'half a dozen': 6, 'a half dozen': 6, 'half dozen': 6,
  docena: 12, 'una docena': 12, 'media docena': 6,
  'dúzia': 12, 'uma dúzia': 12, 'meia dúzia': 6,
  dutzend: 12, 'ein dutzend': 12, 'ein halbes dutzend': 6, 'halbes dutzend': 6,
  'a dozen and a half': 18, 'dozen and a half': 18, 'una docena y media': 18, 'docena y media': 18,
  'uma dúzia e meia': 18, 'dúzia e meia': 18, 'anderthalb dutzend': 18, 'eineinhalb dutzend': 18,
};

/** Articles read as 1; an article before a word that is not a product ("an order") says nothing. */
export const ARTICLES = new Set(['a', 'an', 'un', 'una', 'um', 'uma', 'ein', 'eine', 'einen', 'einem']);

export const DOZEN_WORDS = new Set(['dozen', 'dozens', 'docena', 'docenas', 'duzia', 'duzias', 'dutzend']);

/** Words after a quantity that belong to it: "a dozen of", "una docena de", "2 x". */
export const QUANTITY_LINKS = new Set(['of', 'de', 'x']);

/** Quantities nobody can count: halves, "some", "a few". They make the item unsure. */
const VAGUE = toPhrases([
  'half', 'a half', 'half a', 'half an', 'halves', 'some', 'few', 'a few', 'several', 'many', 'lots of', 'a lot of', 'a bunch of', 'bunch of',
  'medio', 'media', 'una media', 'un medio', 'unos', 'unas', 'algunos', 'algunas', 'algun', 'alguna', 'varios', 'varias', 'muchos', 'muchas',
  'meio', 'meia', 'uma meia', 'um meio', 'uns', 'umas', 'alguns', 'algumas', 'vários', 'várias', 'muitos', 'muitas',
  'halb', 'halbe', 'halben', 'halbes', 'eine halbe', 'einen halben', 'ein paar', 'paar', 'einige', 'mehrere', 'viele',
]);

// Digits followed by a unit describe the product ("500 ml"), they are not a count.
const UNITS = new Set(['ml', 'cl', 'l', 'lt', 'ltr', 'litre', 'liter', 'litro', 'litros', 'g', 'gr', 'kg', 'oz', 'cm']);

const NUMBER_PHRASES: readonly WordPhrase[] = toPhrases(Object.keys(NUMBER_WORDS));
const NUMBER_VALUES = new Map(
  Object.entries(NUMBER_WORDS).map(([words, value]) => [toPhrases([words])[0]!.join(' '), value]),
);

export type QuantityRead =
  | { kind: 'count'; value: number; used: number; article: boolean }
  | { kind: 'vague'; used: number };

/**
 * Reads a quantity starting at `index`: digits ("2", "2x", "x2", "2 x"), number words in four languages,
 * dozens ("a dozen", "2 dozen", "media docena"), and vague amounts (halves, fractions, ranges, "some"),
 * which are returned as such so that the caller asks instead of guessing.
 */
export function readQuantity(tokens: readonly Token[], index: number): QuantityRead | undefined {
  const key = tokens[index]?.key ?? '';
  if (/^\d+([.,/-]\d+)+$/.test(key) || key === '½') return { kind: 'vague', used: 1 };
  const vague = phraseAt(tokens, index, VAGUE);
  const count = readCount(tokens, index);
  // "half a dozen" is a count, "half a pizza" is not.
  if (vague && (!count || vague.length > count.used)) return { kind: 'vague', used: vague.length };
  if (!count) return undefined;
  let used = count.used;
  let value = count.value;
  if (DOZEN_WORDS.has(tokens[index + used]?.key ?? '') && !count.dozen) {
    value *= 12;
    used += 1;
  }
  if (QUANTITY_LINKS.has(tokens[index + used]?.key ?? '')) used += 1;
  return { kind: 'count', value, used, article: used === 1 && ARTICLES.has(key) };
}

function readCount(tokens: readonly Token[], index: number): { value: number; used: number; dozen: boolean } | undefined {
  const key = tokens[index]!.key;
  if (/^\d+$/.test(key)) {
    if (UNITS.has(tokens[index + 1]?.key ?? '')) return undefined;
    return { value: toQuantity(key), used: 1, dozen: false };
  }
  const marked = /^(?:(\d+)x|x(\d+))$/.exec(key);
  if (marked) return { value: toQuantity(marked[1] ?? marked[2]!), used: 1, dozen: false };
  const next = tokens[index + 1]?.key ?? '';
  if (key === 'x' && /^\d+$/.test(next)) return { value: toQuantity(next), used: 2, dozen: false };
  const words = phraseAt(tokens, index, NUMBER_PHRASES);
  if (!words) return undefined;
  return { value: NUMBER_VALUES.get(words.join(' '))!, used: words.length, dozen: words.some((word) => DOZEN_WORDS.has(word)) };
}

/** Kept as written (the caller refuses anything outside 1..99), only bounded so that it stays a safe integer. */
function toQuantity(digits: string): number {
  return Math.min(Number(digits), Number.MAX_SAFE_INTEGER);
}

/** The latest hour a number word after "at" may name ("at seven", "para las ocho"). */
const LAST_HOUR_WORD = 12;

/**
 * Tokens spanned by a time of day ("at 7 pm", "a las 8", "gegen 19 Uhr", "at seven", "para las
 * ocho"), or 0: a time for the kitchen, not a count. An hour written as a word counts only as a
 * whole number word up to twelve, never an article ("at a quarter past").
 */
export function timeOfDayLength(tokens: readonly Token[], index: number): number {
  const preposition = phraseAt(tokens, index, TIME_PREPOSITIONS);
  if (!preposition) return 0;
  const at = index + preposition.length;
  const hour = TIME_OF_DAY.test(tokens[at]?.key ?? '') ? 1 : hourWordLength(tokens, at);
  if (hour === 0) return 0;
  return preposition.length + hour + (TIME_SUFFIXES.has(tokens[at + hour]?.key ?? '') ? 1 : 0);
}

function hourWordLength(tokens: readonly Token[], index: number): number {
  const words = tokens[index] && !ARTICLES.has(tokens[index]!.key) ? phraseAt(tokens, index, NUMBER_PHRASES) : undefined;
  if (!words || words.length !== 1) return 0;
  const value = NUMBER_VALUES.get(words.join(' '))!;
  return value >= 1 && value <= LAST_HOUR_WORD && !DOZEN_WORDS.has(words[0]!) ? 1 : 0;
}
