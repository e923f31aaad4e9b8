import { toPhrases, toWordSet } from './parse-text-tokens';

// Vocabulary in English, Spanish, Portuguese and German. Entries are written as customers type them;
// accents are folded when loaded, so "cancelá" and "cadê" also match "cancela" and "cade".

export const CANCEL_WORDS = toWordSet([
  'cancel', 'cancela', 'cancelar', 'cancele', 'anular', 'anula', 'anule',
  'stornieren', 'storniere', 'storno', 'stornierung',
]);

export const STATUS_WORDS = toWordSet([
  'status', 'estado', 'seguimiento', 'situação', 'rastreio', 'rastrear', 'tracking',
  'bestellstatus', 'lieferstatus',
]);

/** "where" and "order" in the same short message ask for the order status; "when" or "ready" and "order" in a short question too. */
export const WHERE_WORDS = toWordSet(["where", "where's", 'wheres', 'dónde', 'onde', 'cadê', 'wo']);
export const WHEN_WORDS = toWordSet(['when', 'cuándo', 'quando', 'wann']);
export const READY_WORDS = toWordSet(['ready', 'listo', 'pronto', 'pronta', 'fertig']);
export const ORDER_WORDS = toWordSet([
  'order', 'orders', 'food', 'delivery', 'pedido', 'pedidos', 'orden', 'comida', 'entrega', 'encomenda',
  'bestellung', 'lieferung', 'essen',
]);

export const MENU_WORDS = toWordSet([
  'menu', 'menú', 'help', 'catalog', 'catalogue', 'ayuda', 'carta', 'catálogo', 'cardápio', 'ajuda',
  'hilfe', 'speisekarte', 'karte', 'katalog',
]);

export const GREETINGS = toPhrases([
  'hi', 'hii', 'hello', 'hey', 'hiya', 'hi there', 'hello there', 'hey there',
  'good morning', 'good afternoon', 'good evening',
  'hola', 'buenas', 'buenos días', 'buenas tardes', 'buenas noches',
  'olá', 'oi', 'bom dia', 'boa tarde', 'boa noite',
  'hallo', 'hallo zusammen', 'moin', 'servus', 'guten tag', 'guten morgen', 'guten abend',
]);

/**
 * Words that may surround a menu word or greeting without making the message an order:
 * "can I see the menu please" is a menu request, "2 kids menu" and "menú del día" are not.
 */
export const MENU_CONTEXT_WORDS = toWordSet([
  'please', 'pls', 'plz', 'the', 'a', 'an', 'me', 'my', 'your', 'you', 'can', 'could', 'i', 'we', 'see',
  'show', 'send', 'get', 'have', 'need', 'want', 'to', 'is', 'what', "what's", 'whats',
  'por', 'favor', 'porfa', 'el', 'la', 'su', 'tu', 'de', 'ver', 'mostrar', 'muéstrame', 'mándame', 'envíame',
  'necesito', 'quiero', 'puedo', 'o', 'seu', 'sua', 'mostra', 'manda', 'quero', 'preciso', 'pode', 'eu',
  'bitte', 'die', 'eure', 'ihre', 'zeigen', 'zeig', 'mir', 'ich', 'brauche', 'möchte', 'kann', 'können', 'sie',
]);

/** Whole words that separate items; single letters ("y", "e") only count as whole words. */
export const CONJUNCTIONS = toWordSet(['and', 'plus', 'y', 'e', 'und', 'also', 'tambien', 'também', 'auch', 'dazu', 'sowie']);

/** Words that separate items and end a negation: "no coke but 2 margherita". */
export const CONTRASTS = toPhrases([
  'but', 'just', 'only', 'rather', 'pero', 'sino', 'solo', 'sólo', 'solamente', 'mas', 'só', 'apenas', 'somente',
  'aber', 'sondern', 'nur', 'bloß', 'bloss',
]);

/**
 * Negations, in the four languages. What follows one, up to the next contrast or sentence end, is
 * never ordered: "no coke", "sin cebolla", "sem gelo", "keine Cola", "ohne Zwiebeln", "I don't want coke".
 * Portuguese "no" ("in the") is read as a negation too: that can only cost an order, never add one.
 */
export const NEGATIONS = toPhrases([
  'no', 'not', "don't", 'dont', 'do not', "doesn't", 'does not', "didn't", 'never', 'without', 'nor', 'none of',
  'no more', 'nothing', 'minus', 'except', 'hold the',
  'sin', 'ni', 'nada', 'nunca', 'tampoco', 'excepto', 'menos',
  'não', 'nao', 'sem', 'nem', 'nenhum', 'nenhuma', 'exceto',
  'kein', 'keine', 'keinen', 'keinem', 'keiner', 'keines', 'ohne', 'nicht', 'nichts', 'nie', 'außer', 'ausser',
]);

/**
 * Before a count or a product, a correction of an order already placed: "make it 3
 * margheritas" read alone would place a second order. Before filler only ("make it quick"), filler.
 */
export const CORRECTIONS = toPhrases(['make it', 'make that', 'make them', 'make those']);

/**
 * Ways to end an order, when nothing but politeness follows: "una coca no más" (Latin American
 * "just one coke"), "2 pizzas nada más", "nothing else", "sonst nichts". Followed by words, the
 * negation in them refuses those words: "no más coca".
 */
export const CLOSING_PHRASES = toPhrases([
  'nothing else', 'nothing more', "that's all", 'thats all', 'that is all',
  'no más', 'nada más', 'nada mas', 'nada mais', 'eso es todo', 'es todo', 'solo eso', 'só isso', 'so isso', 'é isso', 'e isso',
  'sonst nichts', 'nichts weiter', 'nichts mehr', 'das wars', "das war's", 'das ist alles',
]);

/** "margherita or pepperoni", "2 o 3": the customer has not decided, so the part is unsure. */
export const ALTERNATIVES = toWordSet(['or', 'ou', 'oder', 'either', 'entweder']);
/** Spanish "o" is "or", Portuguese "o" is "the": it is read as "or" only next to a quantity ("2 o 3"). */
export const AMBIGUOUS_OR = 'o';

/**
 * Words that make a part unsure: hedges, corrections of an earlier order, and references the text alone
 * cannot resolve ("same as last time", "one of each").
 */
export const UNSURE_WORDS = toPhrases([
  'maybe', 'perhaps', 'probably', 'might', 'each', 'same', 'usual', 'actually', 'instead', 'change', 'meant',
  // "#2" (read as "number 2"), "nº 2": an item number on some menu, not a count.
  'number', 'nº', 'numero', 'número', 'nummer', 'nr',
  'quizas', 'quizás', 'tal vez', 'igual', 'cada', 'mismo', 'misma', 'habitual', 'cambia', 'cambiar', 'mejor', 'en vez',
  'talvez', 'mesmo', 'mesma', 'troca', 'trocar', 'muda', 'mudar', 'em vez',
  'vielleicht', 'eventuell', 'jeweils', 'je', 'gleiche', 'gleichen', 'selbe', 'wie immer', 'lieber', 'stattdessen',
  'ändern', 'aendern',
]);

/** Questions about the shop, not orders: "do you have tiramisu?", "¿cuánto cuesta?". Answered with the menu. */
export const QUESTIONS = toPhrases([
  'do you have', 'do you guys have', 'do u have', 'have you got', 'is there', 'are there', 'how much', 'what is the price',
  "what's the price", 'price of', 'how long', 'do you deliver', 'are you open',
  'tienen', 'tienes', 'tenés', 'hay', 'cuanto cuesta', 'cuánto cuesta', 'cuanto sale', 'cuánto sale', 'cuánto es',
  'cuanto es', 'cuánto vale', 'cuanto vale', 'precio de', 'están abiertos',
  'vocês têm', 'voces tem', 'vcs tem', 'você tem', 'tem', 'têm', 'quanto custa', 'quanto é', 'quanto e', 'quanto fica',
  'preço da', 'preço do',
  'habt ihr', 'haben sie', 'hast du', 'gibt es', 'gibts', 'was kostet', 'wie viel kostet', 'wieviel kostet',
  'wie teuer', 'was kosten',
]);
