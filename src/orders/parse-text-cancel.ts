import { CONTAINER_WORDS, COURTESY_PHRASES, FILLER_WORDS } from './parse-text-filler';
import type { ChunkReading, UnsurePhrase } from './parse-text-items';
import { normalizeText, phraseAt, tokenize, toWordSet, type Token, type WordPhrase } from './parse-text-tokens';
import { CANCEL_WORDS, NEGATIONS } from './parse-text-words';

/**
 * Words that may stand beside a cancel word in a plain cancel: "cancel my last order", "storniere meine
 * Bestellung", and "solo CANCELAR" as the clarification asks for it.
 */
const CANCEL_CONTEXT_WORDS = toWordSet([
  'whole', 'entire', 'last', 'latest', 'sorry', 'only',
  'su', 'tu', 'último', 'última', 'perdón', 'disculpa', 'disculpe', 'solo', 'sólo',
  'meu', 'minha', 'seu', 'sua', 'desculpa', 'desculpe', 'só', 'apenas',
  'mein', 'meine', 'meinen', 'letzte', 'letzten', 'ganze', 'entschuldigung', 'nur',
]);

/**
 * Beside a cancel word, these may mean an order other than the newest, or more than one: "cancel
 * my previous order" after a corrected order, "cancel everything" with two open. A cancel reaches
 * the newest order only, and cannot be undone, so such a message is asked about. Some are filler
 * elsewhere ("thanks all", "tudo bem"). Spanish "todo" is "the whole" too ("cancela todo el
 * pedido"), but also "everything" beside it ("cancela todo, el pedido también"): asked about.
 */
const CANCEL_SCOPE_WORDS = toWordSet([
  'all', 'everything', 'both', 'previous', 'earlier', 'first', 'other', 'older',
  'todo', 'toda', 'todos', 'todas', 'ambos', 'ambas', 'anterior', 'primer', 'primero', 'primera', 'otro', 'otra',
  'tudo', 'primeiro', 'primeira', 'outro', 'outra',
  'alles', 'alle', 'beide', 'beiden', 'vorherige', 'vorherigen', 'erste', 'ersten', 'andere', 'anderen',
]);

/**
 * Filler in an order ("for delivery", "to pick up"), but beside a cancel word they say what to
 * cancel: "cancel the delivery, I'll pick it up" changes how the order comes, and must not cancel it.
 */
const FULFILMENT_WORDS = toWordSet([
  'delivery', 'deliver', 'pickup', 'pick', 'collect', 'collection', 'send', 'bring',
  'domicilio', 'llevar', 'entregar', 'entrega', 'levar', 'viagem', 'mitnehmen', 'liefern', 'lieferung', 'bringen', 'schicken',
]);

/**
 * A cancel word with nothing beside it but politeness and words about the order ("please cancel my
 * order", "cancelar pedido", "bitte stornieren"). Cancelling cannot be undone, so a negation ("don't
 * cancel", "nicht stornieren") or any other word ("cancel the coke", "cancel the bottle", "cancel
 * all", "2 margherita, cancel") makes the message something to ask about instead, and so does a catalog name, even one that is also
 * filler elsewhere ("cancel the mate", with a Mate on the menu).
 */
export function isPlainCancel(tokens: readonly Token[], catalog: readonly WordPhrase[] = []): boolean {
  let cancel = false;
  for (let index = 0; index < tokens.length; ) {
    if (phraseAt(tokens, index, NEGATIONS)) return false;
    const courtesy = phraseAt(tokens, index, COURTESY_PHRASES);
    const key = tokens[index]!.key;
    if (CANCEL_WORDS.has(key)) cancel = true;
    else if (FULFILMENT_WORDS.has(key) || CONTAINER_WORDS.has(key) || CANCEL_SCOPE_WORDS.has(key) || phraseAt(tokens, index, catalog)) return false;
    else if (!courtesy && !FILLER_WORDS.has(key) && !CANCEL_CONTEXT_WORDS.has(key)) return false;
    index += courtesy?.length ?? 1;
  }
  return cancel;
}

/** Whether a phrase holds a cancel word as a whole word, in any of the four languages. */
export function mentionsCancel(phrase: string): boolean {
  return tokenize(normalizeText(phrase)).some((token) => CANCEL_WORDS.has(token.key));
}

/**
 * Turns items and exclusions that hold a cancel word into doubts: in an order, "cancel the coke" or
 * "sin cancelar" is neither a product nor a refusal of one, and the customer must be asked.
 */
export function holdCancelWords(reading: ChunkReading): ChunkReading {
  const held = (phrase: string, written: string): UnsurePhrase => ({ phrase, written, reason: 'cancel' });
  return {
    items: reading.items.filter((item) => !mentionsCancel(item.phrase)),
    excluded: reading.excluded.filter((exclusion) => !mentionsCancel(exclusion.phrase)),
    unsure: [
      ...reading.unsure.map((doubt) => (mentionsCancel(doubt.written) ? { ...doubt, reason: 'cancel' as const } : doubt)),
      ...reading.items.filter((item) => mentionsCancel(item.phrase)).map((item) => held(item.phrase, item.phrase)),
      ...reading.excluded.filter((exclusion) => mentionsCancel(exclusion.phrase)).map((exclusion) => held(exclusion.phrase, exclusion.written)),
    ],
  };
}
