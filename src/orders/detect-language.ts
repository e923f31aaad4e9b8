/** The languages replies are written in; each has a catalogue in reply-texts/. */
export const REPLY_LANGUAGES = ['en', 'es', 'pt', 'de'] as const;
export type ReplyLanguage = (typeof REPLY_LANGUAGES)[number];

/**
 * Words that mark a language: number words, connectors, intent words, greetings and
 * courtesy. Words shared by two languages ("menu", "e", "o") are left out, so that one word
 * never tips a message into the wrong language. Accents are folded before the lookup.
 */
const MARKERS: Record<ReplyLanguage, string[]> = {
  en: ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'and', 'with', 'without', 'please',
    'thanks', 'thank', 'hi', 'hello', 'hey', 'good', 'morning', 'evening', 'want', 'would', 'like', 'the', 'where', 'my',
    'order', 'cancel', 'status', 'help', 'i', 'some', 'of', 'you'],
  es: ['uno', 'una', 'dos', 'tres', 'cuatro', 'cinco', 'seis', 'siete', 'ocho', 'nueve', 'diez', 'y', 'con', 'sin',
    'por', 'favor', 'gracias', 'hola', 'buen', 'buenas', 'buenos', 'dias', 'quiero', 'quisiera', 'dame', 'donde', 'mi', 'pedido',
    'cancelar', 'estado', 'ayuda', 'carta', 'el', 'los', 'las', 'del', 'necesito'],
  pt: ['um', 'uma', 'dois', 'duas', 'tres', 'quatro', 'cinco', 'seis', 'sete', 'oito', 'nove', 'dez', 'e', 'com', 'sem',
    'obrigado', 'obrigada', 'ola', 'oi', 'bom', 'boa', 'dia', 'quero', 'queria', 'gostaria', 'onde', 'meu', 'minha',
    'encomenda', 'cancelar', 'cardapio', 'ajuda', 'cade', 'os', 'as', 'do', 'da', 'preciso', 'voce'],
  de: ['eins', 'ein', 'eine', 'einen', 'zwei', 'drei', 'vier', 'funf', 'sechs', 'sieben', 'acht', 'neun', 'zehn', 'und',
    'mit', 'ohne', 'bitte', 'danke', 'hallo', 'guten', 'tag', 'morgen', 'abend', 'moin', 'servus', 'ich', 'mochte',
    'hatte', 'gern', 'gerne', 'wo', 'ist', 'meine', 'bestellung', 'stornieren', 'hilfe', 'speisekarte', 'der', 'die', 'das'],
};

/**
 * Words that two languages share, scored for neither. Portuguese "do" and "as" are English
 * words too: "Do you deliver?" was answered in Portuguese, and every later reply with it.
 */
const AMBIGUOUS = new Set(['cinco', 'seis', 'cancelar', 'menu', 'o', 'a', 'de', 'no', 'tres', 'por', 'favor', 'do', 'as']);

/**
 * Words that, written with their accent, are of one language, and folded, of another: Spanish
 * "día" and "quería" are Portuguese "dia" and "queria" without it. Looked up before folding:
 * "Buen día, quería 2 empanadas" was answered in Portuguese, and every later reply with it.
 */
const ACCENTED: ReadonlyMap<string, ReplyLanguage> = new Map([['día', 'es'], ['quería', 'es']]);

/**
 * Those words without their accent: Portuguese, or Spanish typed without accents, as it often is
 * on a phone. They count only where no other word leads: "Buen dia, queria 2 empanadas" is
 * Spanish by "buen", and "Queria 2 coxinhas" Portuguese.
 */
const UNACCENTED = new Set([...ACCENTED.keys()].map(fold));

const LOOKUP = new Map<string, ReplyLanguage[]>();
for (const language of REPLY_LANGUAGES) {
  for (const word of MARKERS[language]) {
    if (AMBIGUOUS.has(word)) continue;
    LOOKUP.set(word, [...(LOOKUP.get(word) ?? []), language]);
  }
}

function fold(text: string): string {
  return text.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}

/**
 * The language with the most marker words, or null when no language leads ("2 pizzas",
 * "1 coke", a tie): the caller then uses the customer's last language or the default.
 */
export function detectLanguage(text: string): ReplyLanguage | null {
  const scores = new Map<ReplyLanguage, { words: number; unaccented: number }>();
  for (const word of text.normalize('NFC').toLowerCase().split(/[^\p{L}\p{M}]+/u)) {
    const accented = ACCENTED.get(word);
    const folded = fold(word);
    for (const language of accented ? [accented] : LOOKUP.get(folded) ?? []) {
      const score = scores.get(language) ?? { words: 0, unaccented: 0 };
      if (UNACCENTED.has(folded) && !accented) score.unaccented += 1;
      else score.words += 1;
      scores.set(language, score);
    }
  }
  const ranked = [...scores.entries()].sort(([, a], [, b]) => b.words - a.words || b.unaccented - a.unaccented);
  const [first, second] = ranked;
  if (!first || (second && second[1].words === first[1].words && second[1].unaccented === first[1].unaccented)) return null;
  return first[0];
}
