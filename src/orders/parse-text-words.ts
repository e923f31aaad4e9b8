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

/** "where" and "order" in the same short message ask for the order status. */
export const WHERE_WORDS = toWordSet(["where", "where's", 'wheres', 'dónde', 'onde', 'cadê', 'wo']);
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

/** Courtesy removed wherever it appears in an item phrase; a phrase of only courtesy ("thanks!") is empty. */
export const COURTESY = toPhrases([
  'please', 'pls', 'plz', 'thanks', 'thx', 'thank you', 'thank you very much', 'thank you so much',
  'thanks a lot', 'many thanks',
  'por favor', 'porfa', 'porfavor', 'gracias', 'muchas gracias',
  'obrigado', 'obrigada', 'muito obrigado', 'muito obrigada', 'valeu',
  'bitte', 'danke', 'danke schön', 'dankeschön', 'vielen dank',
]);

/** Greetings and ways of asking, removed only from the start of an item phrase. */
export const OPENERS = [
  ...GREETINGS,
  ...toPhrases([
    'i want', 'i would like', "i'd like", 'id like', "i'll have", "i'll take", 'i need', 'we want', "we'd like",
    'can i have', 'can i get', 'could i have', 'could i get', 'may i have', 'give me', 'get me',
    'quiero', 'yo quiero', 'quisiera', 'dame', 'deme', 'me da', 'me das', 'ponme', 'me pones', 'me gustaría',
    'necesito',
    'quero', 'eu quero', 'queria', 'eu queria', 'gostaria de', 'eu gostaria de', 'me vê', 'me manda',
    'preciso de',
    'ich möchte', 'ich moechte', 'ich hätte gern', 'ich hätte gerne', 'ich haette gern', 'ich haette gerne',
    'ich hätte', 'ich will', 'ich nehme', 'ich brauche', 'wir möchten', 'wir hätten gerne',
  ]),
].sort((a, b) => b.length - a.length);

/** Whole words that separate items; single letters ("y", "e") only count as whole words. */
export const CONJUNCTIONS = toWordSet(['and', 'plus', 'y', 'e', 'und']);
