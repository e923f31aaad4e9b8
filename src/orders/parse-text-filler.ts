import { toPhrases, toWordSet } from './parse-text-tokens';

/**
 * Containers and portions: "2 bottles of wine", "una lata de coca", "3 Stück Pizza". Filler in an
 * order, but beside a cancel word they name a part of it: "cancel the bottle" is not "cancel".
 */
export const CONTAINER_WORDS = toWordSet([
  'piece', 'pieces', 'bottle', 'bottles', 'glass', 'cans', 'tin',
  'botella', 'botellas', 'lata', 'latas', 'vaso', 'porcion', 'porciones', 'unidad', 'unidades',
  'garrafa', 'garrafas', 'latinha', 'copo', 'fatia', 'fatias',
  'stück', 'stueck', 'flasche', 'flaschen', 'dose', 'dosen', 'glas',
]);

/**
 * Words that carry no product and no quantity: greetings, politeness, ways of asking, articles and
 * prepositions, in English, Spanish, Portuguese and German. They are dropped wherever they appear,
 * except inside a catalog name ("Pizza of the day"). Every other word must be explained by the
 * product it is matched to, so a word missing here costs a clarification, never a wrong order.
 */
export const FILLER_WORDS = toWordSet([
  // English
  'hi', 'hii', 'hello', 'hey', 'hiya', 'yo', 'good', 'morning', 'afternoon', 'evening', 'night', 'there', 'guys',
  'team', 'mate', 'folks', 'everyone', 'all', 'please', 'pls', 'plz', 'plse', 'thanks', 'thank', 'thankyou', 'thx',
  'ty', 'cheers', 'you', 'u', 'ya', 'i', "i'd", 'id', "i'll", "i'm", 'im', 'we', "we'd", "we'll", 'us', 'me', 'my',
  'our', 'would', 'could', 'can', 'may', 'like', 'love', 'want', 'wanna', 'need', 'have', 'get', 'take', 'grab', 'give', 'gimme',
  'order', 'ordering', 'place', 'make', 'it', 'that', 'this', 'be', 'will', 'is', 'are', 'to', 'for', 'the', 'of',
  'with', 'in', 'on', 'at', 'and', 'so', 'too', 'as', 'well', 'more', 'also', 'then', 'now', 'asap', 'today',
  'tonight', 'lunch', 'dinner', 'delivery', 'deliver', 'pickup', 'pick', 'up', 'collect', 'collection', 'send',
  'bring', 'go', 'ok', 'okay', 'yes', 'yeah', 'yep', 'sure', 'great', 'awesome', 'perfect', 'lovely', 'sir', 'madam',
  'again', 'total', 'quick', 'quickly', 'please?', 'kindly', 'hungry', 'really', 'just', 'over', 'round', 'around', 'lemme',
  // Spanish
  'hola', 'buenas', 'buenos', 'buen', 'dia', 'dias', 'tardes', 'noches', 'que', 'tal', 'quiero', 'quisiera',
  'queria', 'querria', 'quisieramos', 'queremos', 'me', 'nos', 'mi', 'gustaria', 'dame', 'deme', 'denme', 'da',
  'das', 'pones', 'ponme', 'pongan', 'manda', 'mandame', 'mandar', 'envia', 'enviame', 'enviar', 'traeme', 'trae',
  'traer', 'mandan', 'manden', 'mandas', 'traen', 'necesito', 'pedir', 'pido', 'pedido', 'por', 'favor', 'porfa', 'porfis', 'porfavor', 'gracias',
  'muchas', 'mil', 'el', 'la', 'los', 'las', 'de', 'del', 'con', 'para', 'al', 'llevar', 'domicilio', 'ahora',
  'hoy', 'puedo', 'puede', 'pueden', 'podrian', 'podria', 'seria', 'favorcito', 'amigo', 'amiga', 'si', 'vale',
  'perfecto', 'genial', 'saludos', 'entonces', 'tambien', 'mas',
  'podrias', 'podes', 'puedes', 'saber',
  // Portuguese
  'ola', 'oi', 'oii', 'oie', 'bom', 'boa', 'tarde', 'noite', 'tudo', 'bem', 'quero', 'queria', 'gostaria', 'gostariamos',
  'pedir', 'peco', 'mande', 'manda', 've', 'vê', 'obrigado', 'obrigada', 'brigado', 'brigada', 'valeu', 'muito',
  'o', 'os', 'as', 'do', 'da', 'das', 'pra', 'pro', 'para', 'entregar', 'entrega', 'aqui', 'eu', 'nos',
  'pode', 'poderia', 'podem', 'ser', 'voces', 'vcs', 'vc', 'moco', 'moca', 'com', 'mais', 'agora', 'hoje', 'sim',
  'pfv', 'pf', 'pfvr', 'obg', 'obgd', 'obrigadao', 'por', 'favor', 'beleza', 'blz', 'tb', 'tbm', 'tambem', 'viagem', 'levar',
  // German
  'hallo', 'moin', 'servus', 'guten', 'tag', 'morgen', 'abend', 'ich', 'wir', 'mochte', 'moechte', 'mochten',
  'moechten', 'hatte', 'haette', 'hatten', 'haetten', 'gern', 'gerne', 'will', 'wollen', 'wurde', 'wuerde', 'nehme',
  'nehmen', 'brauche', 'brauchen', 'bestellen', 'bestelle', 'bestellung', 'bitte', 'danke', 'dank', 'vielen',
  'schon', 'schoen', 'mal', 'noch', 'mit', 'fur', 'fuer', 'zum', 'zur', 'mitnehmen', 'liefern', 'lieferung',
  'die', 'der', 'das', 'den', 'dem', 'des', 'mir', 'uns', 'konnte', 'koennte', 'kann', 'konnen', 'koennen', 'ja',
  'okay', 'jetzt', 'heute', 'gleich', 'leute', 'euch', 'ihr', 'du', 'sie', 'lg', 'vg', 'gruss',
  'grusse', 'gruesse', 'liebe', 'lieben', 'sehr', 'dafur', 'dafuer', 'bekommen', 'kriegen', 'haben',
  'zusammen', 'konnt', 'koennt', 'bringen', 'schicken',
  ...CONTAINER_WORDS,
]);

/** Courtesy of several words whose single words mean something else ("muchas" alone is a vague amount). */
export const COURTESY_PHRASES = toPhrases([
  'thanks a lot', 'thanks in advance', 'in advance', 'muchas gracias', 'mil gracias', 'de antemano',
  'muito obrigado', 'muito obrigada', 'desde ja', 'danke im voraus', 'im voraus', 'vielen dank',
]);

/** "at 7", "a las 8", "gegen 19 Uhr": a time for the kitchen, not a count. */
// Not Portuguese "as"/"às" nor "um": "as 2 cocas" is "the 2 cokes", "um" is "one".
export const TIME_PREPOSITIONS = toPhrases(['at', 'by', 'a las', 'para las', 'gegen', 'ab']);
export const TIME_OF_DAY = /^\d{1,2}(?:[:.h]\d{2})?(?:am|pm|h|hs|uhr)?$/;
export const TIME_SUFFIXES = toWordSet(['am', 'pm', 'h', 'hs', 'horas', 'uhr', "o'clock", 'oclock']);
