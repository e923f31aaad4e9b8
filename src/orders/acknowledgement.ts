import { catalogPhrases } from './parse-text';
import { normalizeText, phraseAt, tokenize, toWordSet, type Token } from './parse-text-tokens';
import { GREETINGS } from './parse-text-words';

/**
 * Words of thanks and agreement, in the four languages replies are written in. A message of
 * these alone ("thanks!", "ok 👍", "muchas gracias", "valeu", "danke schön") answers wagate's
 * last reply; it asks for nothing.
 */
const ACKNOWLEDGEMENT_WORDS = toWordSet([
  'thanks', 'thank', 'you', 'thankyou', 'thx', 'ty', 'cheers', 'ok', 'okay', 'okey', 'k', 'kk', 'great', 'awesome',
  'perfect', 'lovely', 'cool', 'nice', 'alright', 'got', 'it', 'noted', 'so', 'much', 'a', 'lot', 'very',
  'gracias', 'muchas', 'mil', 'vale', 'perfecto', 'genial', 'listo', 'dale', 'buenisimo',
  'obrigado', 'obrigada', 'obg', 'obgd', 'valeu', 'beleza', 'blz', 'perfeito', 'otimo', 'muito', 'show',
  'danke', 'dank', 'vielen', 'schon', 'schoen', 'super', 'prima', 'perfekt', 'passt', 'alles', 'klar',
]);

// Thumbs, hands, hearts and smiles; with skin tones and the variation selector that follow them.
const ACKNOWLEDGEMENT_EMOJI = /(?:👍|👌|🙏|🤝|👏|✅|❤|♥|💯|😊|🙂|😀|😃|😄|😁|🥰|😍|☺)[\u{1F3FB}-\u{1F3FF}\uFE0F]*/gu;
const OTHER_EMOJI = /\p{Extended_Pictographic}/u;

/**
 * A short reply read as words: those of letters or digits, after the emoji that acknowledge; null
 * when another emoji asks for something (a 🍕) or a word is a product of the catalog ("super" for
 * a Super Bock).
 */
function shortReplyWords(text: string, catalogTerms: readonly string[]): { words: Token[]; acknowledgedByEmoji: boolean } | null {
  const rest = text.replace(ACKNOWLEDGEMENT_EMOJI, ' ');
  if (OTHER_EMOJI.test(rest)) return null;
  const words = tokenize(normalizeText(rest)).filter((token) => /\p{L}|\p{N}/u.test(token.key));
  const products = catalogPhrases(catalogTerms).oneWordNames;
  if (words.some((token) => products.has(token.key))) return null;
  return { words, acknowledgedByEmoji: rest !== text };
}

/** True for thanks or agreement alone, which gets no reply: the menu in answer to "thanks" asked nothing of anyone. */
export function isAcknowledgement(text: string, catalogTerms: readonly string[] = []): boolean {
  const reply = shortReplyWords(text, catalogTerms);
  if (!reply) return false;
  if (reply.words.length === 0) return reply.acknowledgedByEmoji;
  return reply.words.every((token) => ACKNOWLEDGEMENT_WORDS.has(token.key));
}

/**
 * True for a greeting alone ("Hola!", "good evening"), or one with thanks ("hi, thanks 🙏"). As a
 * message it gets the menu; as a cart's note it asks the kitchen for nothing.
 */
export function isGreeting(text: string, catalogTerms: readonly string[] = []): boolean {
  const words = shortReplyWords(text, catalogTerms)?.words ?? [];
  let greeted = false;
  for (let index = 0; index < words.length; ) {
    const greeting = phraseAt(words, index, GREETINGS);
    if (greeting) greeted = true;
    else if (!ACKNOWLEDGEMENT_WORDS.has(words[index]!.key)) return false;
    index += greeting?.length ?? 1;
  }
  return greeted;
}
