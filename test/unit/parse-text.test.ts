import { parseOrderText, type ItemPhrase, type ParsedText } from '../../src/orders/parse-text';
import { MAX_ITEMS, MAX_TEXT_CHARS } from '../../src/orders/parse-text-limits';

function itemsOf(text: string, keepTogether: readonly string[] = []): ItemPhrase[] {
  const parsed = parseOrderText(text, { keepTogether });
  expect(parsed.intent).toBe('order');
  expect(parsed.unsure).toEqual([]);
  return parsed.items;
}

function item(quantity: number, phrase: string): ItemPhrase {
  return { quantity, phrase };
}

describe('free-text orders in four languages', () => {
  it('reads "2x" and an English number word as quantities, split on a comma', () => {
    expect(itemsOf('2x margherita, one coke')).toEqual([item(2, 'margherita'), item(1, 'coke')]);
  });

  it('reads a Spanish order, dropping "quiero" and "por favor" and splitting on "y"', () => {
    expect(itemsOf('Quiero dos pizzas margherita y una coca cola por favor')).toEqual([
      item(2, 'pizzas margherita'),
      item(1, 'coca cola'),
    ]);
  });

  it('reads German counts in "-mal", as German orders are written', () => {
    expect(itemsOf('Einmal Margherita und zweimal Cola, bitte')).toEqual([item(1, 'margherita'), item(2, 'cola')]);
    expect(itemsOf('dreimal Brezel')).toEqual([item(3, 'brezel')]);
  });

  it('reads thirteen to twenty in words, in every language', () => {
    expect(itemsOf('fifteen coke')).toEqual([item(15, 'coke')]);
    expect(itemsOf('veinte empanadas')).toEqual([item(20, 'empanadas')]);
    expect(itemsOf('quinze pastéis')).toEqual([item(15, 'pastéis')]);
    expect(itemsOf('zwanzig Brezeln')).toEqual([item(20, 'brezeln')]);
  });

  it('reads a German order, dropping "ich hätte gerne" and splitting on "und"', () => {
    expect(itemsOf('Ich hätte gerne zwei Pizza Salami und eine Cola')).toEqual([item(2, 'pizza salami'), item(1, 'cola')]);
  });

  it('reads a Portuguese order, dropping "quero", splitting on "e" and keeping the accent in "guaraná"', () => {
    expect(itemsOf('quero duas pizzas e um guaraná')).toEqual([item(2, 'pizzas'), item(1, 'guaraná')]);
  });

  it('keeps a catalog name whole, "con" and accent included: "3 café con leche"', () => {
    expect(itemsOf('3 café con leche', ['Café con leche'])).toEqual([item(3, 'café con leche')]);
  });

  it('never splits on "with": "a large coffee with milk please" is one item of 1, its filler words dropped', () => {
    expect(itemsOf('a large coffee with milk please')).toEqual([item(1, 'large coffee milk')]);
  });

  it('accepts number words typed without accents or umlauts ("tres", "fuenf") as well as with them', () => {
    expect(itemsOf('tres empanadas, três pastéis, fünf Brezeln, fuenf Bier')).toEqual([
      item(3, 'empanadas'),
      item(3, 'pastéis'),
      item(5, 'brezeln'),
      item(5, 'bier'),
    ]);
  });

  it.each([
    ['one', 1], ['ten', 10], ['an', 1], ['a couple of', 2],
    ['uno', 1], ['un', 1], ['nueve', 9], ['diez', 10],
    ['uma', 1], ['dois', 2], ['sete', 7], ['dez', 10],
    ['einen', 1], ['eins', 1], ['sechs', 6], ['zehn', 10],
  ])('reads the number word "%s" as %i', (word, quantity) => {
    expect(itemsOf(`${word} salad`)).toEqual([item(quantity, 'salad')]);
  });

  it('removes German "bitte" and Portuguese "por favor" wherever they appear', () => {
    expect(itemsOf('zwei Bitte Brezeln bitte')).toEqual([item(2, 'brezeln')]);
    expect(itemsOf('um pão de queijo por favor', ['Pão de queijo'])).toEqual([item(1, 'pão de queijo')]);
  });

  it('strips a greeting and a request before the quantity: "Hola! quiero 2 tacos"', () => {
    expect(itemsOf('Hola! quiero 2 tacos')).toEqual([item(2, 'tacos')]);
  });

  it.each([
    'can I have', 'give me', "I'd like", 'I want', 'quisiera', 'eu queria', 'ich möchte',
  ])('strips the request "%s" from the start of an item', (request) => {
    expect(itemsOf(`${request} 2 lemonades`)).toEqual([item(2, 'lemonades')]);
  });
});

describe('quantity forms', () => {
  it.each([
    ['2 margherita', 2],
    ['2x margherita', 2],
    ['2 x margherita', 2],
    ['2X margherita', 2],
    ['2× margherita', 2],
    ['x2 margherita', 2],
    ['margherita x2', 2],
    ['margherita x 2', 2],
    ['margherita 2x', 2],
    ['margherita (x3)', 3],
    ['margherita', 1],
  ])('reads "%s" as %i margherita', (text, quantity) => {
    expect(itemsOf(text)).toEqual([item(quantity, 'margherita')]);
  });

  it('reads one item per line with trailing "x2" and "x 3"', () => {
    expect(itemsOf('margherita x2\npepperoni x 3')).toEqual([item(2, 'margherita'), item(3, 'pepperoni')]);
  });

  it('makes a second, trailing count unsure: "2 margherita x3"', () => {
    expect(parseOrderText('2 margherita x3').unsure).toEqual([{ phrase: '', written: 'x3', reason: 'quantity' }]);
  });

  it('excludes a zero quantity and passes quantities over 99 through unchanged for the caller to refuse', () => {
    const parsed = parseOrderText('0 pizzas, 150 cokes');
    expect(parsed.items).toEqual([item(150, 'cokes')]);
    expect(parsed.excluded).toEqual([{ phrase: 'pizzas', written: '0 pizzas' }]);
  });

  it('keeps a quantity of hundreds of digits a finite safe integer', () => {
    const [only] = itemsOf(`${'9'.repeat(400)} cokes`);
    expect(only).toEqual(item(Number.MAX_SAFE_INTEGER, 'cokes'));
  });

  it('reads "1." and "2)" at the start of a line as list numbering, not as quantities', () => {
    expect(itemsOf('1. 3x margherita\n2) coke')).toEqual([item(3, 'margherita'), item(1, 'coke')]);
  });

  it('does not take digits inside a product word as a quantity: "7up" and "500ml"', () => {
    expect(itemsOf('7up, coke 500ml')).toEqual([item(1, '7up'), item(1, 'coke 500ml')]);
  });
});

describe('splitting into items', () => {
  it('splits on commas, semicolons, newlines, "+", "&", "and" and "plus"', () => {
    const phrases = itemsOf('tea, soup; bread\nrice + beans & salad and juice plus cake').map((i) => i.phrase);
    expect(phrases).toEqual(['tea', 'soup', 'bread', 'rice', 'beans', 'salad', 'juice', 'cake']);
  });

  it('keeps a catalog name that spans a conjunction in one piece, and splits around it', () => {
    const keepTogether = ['Fish and chips', 'Mac & Cheese', 'Pão de queijo', 'Coca-Cola'];
    const parse = (text: string) => itemsOf(text, keepTogether);
    expect(parse('2 fish and chips and a coke')).toEqual([item(2, 'fish and chips'), item(1, 'coke')]);
    expect(parse('one mac & cheese + 2 fish & chips')).toEqual([item(1, 'mac and cheese'), item(2, 'fish and chips')]);
    // Not the catalog's words in a row: split as usual.
    expect(parse('2 fish and 3 chips')).toEqual([item(2, 'fish'), item(3, 'chips')]);
    expect(itemsOf('2 fish and chips')).toEqual([item(2, 'fish'), item(1, 'chips')]);
  });

  it('splits on "y" and "e" only as whole words, not inside "yogur" or "empada"', () => {
    expect(itemsOf('1 yogur y 2 empanadas')).toEqual([item(1, 'yogur'), item(2, 'empanadas')]);
    expect(itemsOf('1 empada e 2 esfihas')).toEqual([item(1, 'empada'), item(2, 'esfihas')]);
  });

  it('drops empty phrases left by doubled separators and trailing conjunctions', () => {
    expect(itemsOf(',, 2 tea ;; and\n\n')).toEqual([item(2, 'tea')]);
  });

  it('lower-cases phrases and removes emoji and trailing punctuation', () => {
    expect(itemsOf('2 Pizzas Margherita 🍕🍕!!, Coca-Cola 🥤?')).toEqual([item(2, 'pizzas margherita'), item(1, 'coca-cola')]);
  });
});

describe('intents', () => {
  it.each([
    'cancel', 'Cancel my order', 'cancelar', 'cancela el pedido', 'cancelar pedido', 'Cancelá mi pedido',
    'stornieren', 'bitte stornieren', 'please cancel my order 🙏', 'cancela meu pedido', 'quero cancelar o meu pedido',
    'storniere bitte meine Bestellung', 'I want to cancel my last order', 'solo CANCELAR', 'só CANCELAR', 'nur STORNO',
    'cancel the whole order', 'cancela mi último pedido', 'die ganze Bestellung stornieren', 'meine letzte Bestellung stornieren',
  ])('takes "%s" as cancel', (text) => {
    expect(parseOrderText(text)).toEqual({ intent: 'cancel', items: [], excluded: [], unsure: [] });
  });

  it.each([
    'status', 'order status', 'where is my order?', "where's my food", 'estado de mi pedido', 'dónde está mi pedido',
    'donde esta mi pedido', 'status do pedido', 'cadê meu pedido', 'wo ist meine Bestellung', 'Bestellstatus',
    'is my order ready?', 'when will my order arrive?', '¿cuándo llega mi pedido?', 'quando chega meu pedido?',
    'wann kommt meine Bestellung?', 'ist meine Bestellung fertig?', '¿está listo mi pedido?',
  ])('takes "%s" as order_status', (text) => {
    expect(parseOrderText(text).intent).toBe('order_status');
  });

  it.each([
    'menu', 'Menú', 'help', 'ayuda', 'cardápio', 'ajuda', 'hilfe', 'Speisekarte', 'karte',
    'hi', 'Hello!', 'hola', 'Olá', 'oi', 'hallo', 'Buenas tardes 👋', 'can I see the menu please',
    'Hallo, die Karte bitte', 'preciso de ajuda',
  ])('takes "%s" as menu', (text) => {
    expect(parseOrderText(text).intent).toBe('menu');
  });

  it('matches cancel words only whole: "2 cancelled pizzas" is an order', () => {
    expect(itemsOf('2 cancelled pizzas')).toEqual([item(2, 'cancelled pizzas')]);
  });

  it('reads a message with an item and a status question as an order, so its items are not dropped', () => {
    expect(parseOrderText('2 coke, where is my order?').intent).toBe('order');
    expect(parseOrderText('zweimal Cola, wann kommt meine Bestellung?').intent).toBe('order');
    expect(parseOrderText('a Coca-Cola, where is my order?', { keepTogether: ['Coca-Cola'] }).intent).toBe('order');
  });

  it.each([
    'where is my order #1234', 'status of order 1234', "it's been 40 minutes, where is my food?", 'cadê meu pedido? já faz vinte minutos',
  ])('takes "%s", whose number is an order\'s or a time, as order_status', (text) => {
    expect(parseOrderText(text).intent).toBe('order_status');
  });

  it.each(['where is my pizza order?', 'where is my margherita order', 'status of my pizza order', '¿dónde está mi pedido de pizza?'])(
    'takes "%s", a product named among the words that ask, as order_status',
    (text) => {
      expect(parseOrderText(text, { keepTogether: ['Pizza', 'Margherita'] }).intent).toBe('order_status');
    },
  );

  it.each([
    'Mi pedido: una margherita, cuando puedan', 'uma pizza pra entrega quando der', 'a margherita for delivery, when ready',
  ])('reads "%s", whose "when" or "ready" is no question, as an order', (text) => {
    expect(parseOrderText(text).intent).toBe('order');
  });

  it('ignores a cancel or status word in a message longer than 8 words', () => {
    expect(parseOrderText('2 margherita, 1 pepperoni, 3 coke and do not cancel anything').intent).toBe('order');
    expect(parseOrderText('1 status pizza, 2 garlic bread, 2 coke and 1 water').intent).toBe('order');
  });

  it.each([
    "please don't cancel my order", 'do not cancel', 'never cancel it', 'no cancelar', 'no quiero cancelar',
    'nicht stornieren', 'bitte nicht stornieren', 'não cancela meu pedido', 'não cancelar',
  ])('asks about a negated cancel instead of cancelling: "%s"', (text) => {
    const parsed = parseOrderText(text);
    expect(parsed.intent).toBe('order');
    expect(parsed.items).toEqual([]);
    expect(parsed.unsure).toHaveLength(1);
    expect(parsed.unsure[0]!.written).toMatch(/cancel|storn/);
  });

  it('asks about a cancel beside items, and orders nothing: "2 margherita, cancel the coke"', () => {
    const parsed = parseOrderText('2 margherita, cancel the coke');
    expect(parsed.intent).toBe('order');
    expect(parsed.unsure).toEqual([{ phrase: 'cancel coke', written: 'cancel coke', reason: 'cancel' }]);
  });

  it.each([
    'margherita y coca, sin cancelar', 'cancel and 2 margherita', 'cancel; 1 coke', 'cancel my order, I made a mistake',
    'cancel order #12', 'cancel all orders', 'Pizza stornieren, Cola bleibt',
    'cancel the delivery, I will pick it up', 'please cancel delivery', 'cancelar a entrega, vou buscar', 'Lieferung stornieren, wir holen ab',
    'cancel the bottle', 'cancela la botella', 'cancela las latas', 'cancela a garrafa', 'die Flasche stornieren',
  ])('never takes a cancel mixed with other words as cancel: "%s" is asked about', (text) => {
    const parsed = parseOrderText(text);
    expect(parsed.intent).toBe('order');
    expect(parsed.unsure.some((doubt) => /cancel|storn/.test(doubt.written))).toBe(true);
  });

  // A cancel reaches the newest order only: after a corrected order, "my previous order" is the
  // other one, and "everything" is more than one.
  it.each([
    'please cancel my previous order', 'cancel the first order', 'cancel the other order', 'cancel all', 'cancel everything', 'cancel both',
    'cancela el pedido anterior', 'cancela todo', 'cancela todos mis pedidos', 'cancelar o pedido anterior', 'cancela tudo',
    // "todo el pedido" is the whole order, but "todo, el pedido también" is everything: asked about, both.
    'cancela todo el pedido', 'cancela todo, el pedido también', 'cancela tudo mais o pedido', 'cancela todo pedido',
    'vorherige Bestellung stornieren', 'alles stornieren', 'bitte alle stornieren',
  ])('asks about a cancel that may mean an order other than the newest, or several: "%s"', (text) => {
    const parsed = parseOrderText(text);
    expect(parsed.intent).toBe('order');
    expect(parsed.unsure.some((doubt) => /cancel|storn/.test(doubt.written))).toBe(true);
  });

  it.each(['cancel the mate', 'cancela el mate', 'Mate stornieren', 'please cancel mate'])(
    'asks about a cancel that names a product whose name is filler elsewhere: "%s", with a Mate on the menu',
    (text) => {
      const parsed = parseOrderText(text, { keepTogether: ['Mate', 'Margherita'] });
      expect(parsed.intent).toBe('order');
      expect(parsed.unsure.some((doubt) => doubt.reason === 'cancel')).toBe(true);
    },
  );

  it.each(['do I have to cancel?', 'do you want me to cancel?', '¿puedo cancelar?', 'can I still cancel?', 'should I cancel', 'posso cancelar?', 'muss ich stornieren?',
    'can we cancel?', 'could we cancel the order?', 'können wir stornieren?', 'dá pra cancelar?', '¿se puede cancelar?'])(
    'asks about a cancel that is a question instead of cancelling: "%s"',
    (text) => {
      const parsed = parseOrderText(text);
      expect(parsed.intent).toBe('order');
      expect(parsed.unsure.some((doubt) => doubt.reason === 'cancel')).toBe(true);
    },
  );

  it.each(['can you cancel my order?', '¿me puedes cancelar el pedido?', 'pode cancelar meu pedido?', 'könnt ihr bitte stornieren?', 'cancel?'])(
    'still cancels on a request put as a question: "%s"',
    (text) => {
      expect(parseOrderText(text).intent).toBe('cancel');
    },
  );

  it('still takes a plain cancel as cancel with a catalog given: "cancel my order", "cancela el pedido"', () => {
    for (const text of ['cancel my order', 'cancela el pedido', 'mate, cancel my order']) {
      expect(parseOrderText(text, { keepTogether: ['Margherita', 'Coke'] }).intent).toBe('cancel');
    }
  });

  it('reads "make it" before anything but a count as filler: "2 margherita, make it quick"', () => {
    expect(itemsOf('2 margherita, make it quick')).toEqual([item(2, 'margherita')]);
  });

  it('keeps a menu word that names a product as an order: "2 kids menu", "un menú del día"', () => {
    expect(itemsOf('2 kids menu')).toEqual([item(2, 'kids menu')]);
    expect(itemsOf('un menú del día', ['Menú del día'])).toEqual([item(1, 'menú del día')]);
  });

  it('treats a greeting followed by an order as an order', () => {
    expect(itemsOf('hi there, 2 burgers')).toEqual([item(2, 'burgers')]);
  });
});

describe('edge cases', () => {
  it.each([
    ['empty text', ''],
    ['only whitespace', '  \n\t '],
    ['only emoji', '🍕🍕👍🏽🇧🇷'],
    ['only thanks', 'thanks!'],
    ['only "muito obrigado"', 'muito obrigado 🙏'],
    ['only punctuation', '?!...'],
  ])('returns an order with no items for %s', (_case, text) => {
    expect(parseOrderText(text)).toEqual({ intent: 'order', items: [], excluded: [], unsure: [] });
  });

  it('keeps an unknown phrase for the matcher to reject', () => {
    expect(itemsOf('something nice')).toEqual([item(1, 'something nice')]);
  });

  it('drops courtesy around items: "2 tea, thanks"', () => {
    expect(itemsOf('2 tea, thanks')).toEqual([item(2, 'tea')]);
  });

  const tooLong: ParsedText = { intent: 'order', items: [], excluded: [], unsure: [{ phrase: '', written: '', reason: 'too_long' }] };
  /** A message of `length` characters that ends in "margherita x12". */
  const endingInTwelve = (length: number) => `2 coke,${' '.repeat(length)}`.slice(0, length - 'margherita x12'.length) + 'margherita x12';

  it('reads a message of exactly 1000 characters in full', () => {
    expect(itemsOf(endingInTwelve(MAX_TEXT_CHARS))).toEqual([item(2, 'coke'), item(12, 'margherita')]);
  });

  it('asks about a message over 1000 characters instead of ordering from its first 1000 ("margherita x12" cut to "x1")', () => {
    expect(parseOrderText(endingInTwelve(MAX_TEXT_CHARS + 1))).toEqual(tooLong);
    expect(parseOrderText(`2 ${'ab'.repeat(2500)}`)).toEqual(tooLong);
  });

  it('counts the 1000-character cap in characters, not UTF-16 units: 500 emoji leave room for an item', () => {
    expect(itemsOf(`${'🍕'.repeat(500)} 2 tea`)).toEqual([item(2, 'tea')]);
    expect(parseOrderText(`${'🍕'.repeat(999)} 2 tea`)).toEqual(tooLong);
  });

  it('reads a list of 20 items', () => {
    const names = Array.from({ length: MAX_ITEMS }, (_, i) => `item${i + 1}`);
    expect(itemsOf(names.join(', '), names)).toHaveLength(MAX_ITEMS);
  });

  it('asks about a message of more than 40 phrases of any kind, each of which the product match would look up', () => {
    expect(parseOrderText('a '.repeat(499).trim())).toEqual(tooLong);
    expect(parseOrderText(Array.from({ length: 41 }, () => 'no x').join(', '))).toEqual(tooLong);
    // 20 items and 20 exclusions are still read.
    const names = Array.from({ length: MAX_ITEMS }, (_, i) => `item${i + 1}`);
    const parsed = parseOrderText([...names, ...names.map((name) => `no ${name}x`)].join(', '), { keepTogether: names });
    expect([parsed.items.length, parsed.excluded.length]).toEqual([MAX_ITEMS, MAX_ITEMS]);
  });

  it('asks about a list of 21 items instead of dropping the 21st', () => {
    const names = Array.from({ length: MAX_ITEMS + 1 }, (_, i) => `item${i + 1}`);
    expect(parseOrderText(names.join(', '), { keepTogether: names })).toEqual(tooLong);
  });
});

describe('precision: what the customer refused is never an item', () => {
  const excludedOf = (text: string) => parseOrderText(text).excluded.map((e) => e.phrase);

  it.each([
    ["I don't want coke, just 2 margherita", 'coke'],
    ['no coke please, 2 pepperoni', 'coke'],
    ['2 margherita but not the coke', 'coke'],
    ['No quiero coca, solo 2 margheritas', 'coca'],
    ['sin coca, 2 margheritas', 'coca'],
    ['Não quero coca, só 2 margheritas', 'coca'],
    ['sem coca, 2 margheritas', 'coca'],
    ['Keine Cola, nur 2 Margherita', 'cola'],
    ['ohne Cola, 2 Margherita', 'cola'],
    ['2 Margherita und kein Wasser', 'wasser'],
  ])('"%s" excludes %s and keeps the rest', (text, refused) => {
    const parsed = parseOrderText(text);
    expect(parsed.excluded.map((e) => e.phrase)).toEqual([refused]);
    expect(parsed.items.map((i) => i.phrase)).not.toContain(refused);
    expect(parsed.unsure).toEqual([]);
  });

  it.each(['no más coca', 'no quiero más coca', 'ya no más coca', 'no quiero mas coca', 'no mas coca por favor'])(
    'reads Spanish "más" after a negation as "more", not as Portuguese "but": "%s" refuses the coke',
    (text) => {
      const parsed = parseOrderText(text);
      expect(parsed.items).toEqual([]);
      expect(parsed.excluded.map((e) => e.phrase)).toEqual(['coca']);
    },
  );

  it('reads "mas" after words and a negation as "but": "coca não mas uma margherita" never orders the coke', () => {
    const parsed = parseOrderText('coca não mas uma margherita');
    expect(parsed.items.map((i) => i.phrase)).not.toContain('coca');
    expect(parsed.unsure.map((u) => u.phrase)).toContain('coca');
    expect(parsed.excluded).toEqual([]);
  });

  it('keeps "mas" as "more" after a negation whose words before it were refused: "no quiero coca ni mas fanta"', () => {
    const parsed = parseOrderText('no quiero coca ni mas fanta');
    expect(parsed.items).toEqual([]);
    expect(parsed.excluded.map((e) => e.phrase)).toEqual(['coca', 'fanta']);
  });

  it('reads a closing phrase before a product as a refusal, even one whose name is a filler word: "2 pizzas, no más mate"', () => {
    const parsed = parseOrderText('2 pizzas, no más mate', { keepTogether: ['Mate'] });
    expect(parsed.items).toEqual([item(2, 'pizzas')]);
    expect(parsed.excluded.map((e) => e.phrase)).toEqual(['mate']);
  });

  it.each([
    ['una coca no más', [item(1, 'coca')]],
    ['2 pizzas nada más', [item(2, 'pizzas')]],
    ['2 pizzas nada mais, obrigado', [item(2, 'pizzas')]],
    ['2 margherita nothing more', [item(2, 'margherita')]],
    ["2 margherita and that's all, thanks", [item(2, 'margherita')]],
    ['2 Margherita, sonst nichts', [item(2, 'margherita')]],
  ])('takes a closing phrase at the end for the end of the order, not a refusal: "%s"', (text, items) => {
    expect(itemsOf(text)).toEqual(items);
  });

  it('still reads Portuguese "mas" after a refused product as "but": "não quero coca mas 2 margheritas"', () => {
    const parsed = parseOrderText('não quero coca mas 2 margheritas');
    expect(parsed.excluded.map((e) => e.phrase)).toEqual(['coca']);
    expect(parsed.items).toEqual([item(2, 'margheritas')]);
  });

  it.each([
    ['coca no', 'coca'],
    ['2 margherita, coke no', 'coke'],
    ['margherita sí, coca no', 'coca'],
    ['Cola nicht', 'cola'],
    ['coca não, 2 margheritas', 'coca'],
    ['coca no y 2 pizzas', 'coca'],
  ])('asks about what a negation after it refuses, and never orders it: "%s"', (text, refused) => {
    const parsed = parseOrderText(text);
    expect(parsed.items.map((i) => i.phrase)).not.toContain(refused);
    expect(parsed.unsure.map((u) => u.phrase)).toContain(refused);
  });

  it('carries a negation over "and" up to the next contrast: "no coke and fanta, but 2 tea"', () => {
    const parsed = parseOrderText('no coke and fanta, but 2 tea');
    expect(parsed.excluded.map((e) => e.phrase)).toEqual(['coke', 'fanta']);
    expect(parsed.items).toEqual([item(2, 'tea')]);
  });

  it('keeps the written negation for the clarification when it names no product: "sin cebolla"', () => {
    expect(parseOrderText('2 margherita sin cebolla').excluded).toEqual([{ phrase: 'cebolla', written: 'sin cebolla', afterItem: true }]);
    // Said on its own, it refuses a product rather than changing the one before it.
    expect(parseOrderText('sin cebolla, 2 margherita').excluded).toEqual([{ phrase: 'cebolla', written: 'sin cebolla' }]);
  });

  it.each([
    ['no 2 margherita', '2 margherita'],
    ["I don't want a coke and a margherita", 'a margherita'],
    ['not 3', '3'],
  ])('makes a count inside a negation unsure: "%s"', (text, written) => {
    const parsed = parseOrderText(text);
    expect(parsed.items).toEqual([]);
    expect(parsed.unsure.map((u) => u.written.replace(/^\S+ /, ''))).toContain(written);
  });

  it('excludes a quantity of 0 but leaves "zero" a word, since it may name a product ("Coke Zero")', () => {
    expect(excludedOf('0 coke, 0x agua')).toEqual(['coke', 'agua']);
    expect(parseOrderText('zero coke').items).toEqual([item(1, 'zero coke')]);
  });
});

describe('precision: doubt means a clarification', () => {
  it.each([
    'margherita or pepperoni', '2 o 3 margheritas', 'margherita ou pepperoni', 'Margherita oder Pepperoni',
    'maybe 2 pepperoni', 'quizás 2 pepperoni', 'talvez 2 pepperoni', 'vielleicht 2 Pepperoni',
    'some empanadas', 'unas empanadas', 'umas empanadas', 'ein paar Empanadas',
    'half a margherita', 'media pizza', 'meia pizza', 'eine halbe Pizza', '1,5 margherita', '2-3 cokes',
    'coke 2 margherita', '2 please', 'one of each', 'same as last time', 'dame 2, mejor 3 margheritas',
    'margherita margherita', '#2 margherita', 'nº 2 margherita', 'número 2',
    '2 Margherita und noch eine', 'una margherita y otra', '2 margherita and a',
    '-1 coke', 'coke −2', 'coke –1', 'margherita x-2', '-2margherita',
    'make it 3 margheritas', 'make that 2 cokes', 'make them two', 'make it pepperoni',
    'margherita for 2', 'margherita for two please', 'pizza para dos', 'pizza pra 2', 'Margherita für 2', 'margherita for 2 at 7 pm',
  ])('"%s" is unsure', (text) => {
    expect(parseOrderText(text).unsure.length).toBeGreaterThan(0);
  });

  it('orders nothing of a part with a negative count: "2 margherita, -1 coke" keeps only the margherita and asks about the coke', () => {
    const parsed = parseOrderText('2 margherita, -1 coke');
    expect(parsed.items).toEqual([item(2, 'margherita')]);
    expect(parsed.unsure).toEqual([{ phrase: '', written: '-1 coke', reason: 'quantity' }]);
  });

  it('asks whether "for 2" is people when it ends an item, and nothing of that part is ordered', () => {
    const parsed = parseOrderText('margherita for 2 and a coke, 1 tea');
    expect(parsed.items).toEqual([item(1, 'tea')]);
    expect(parsed.unsure.map((doubt) => doubt.written)).toEqual(['margherita for 2 and a coke']);
  });

  it('still reads a count after "for" that comes before the product, a "for" without a count, and a catalog name with "for 2"', () => {
    expect(itemsOf('an order for 2 margherita')).toEqual([item(2, 'margherita')]);
    expect(itemsOf('2 margheritas for tonight')).toEqual([item(2, 'margheritas')]);
    expect(itemsOf('2 menu for 2', ['Menu for 2'])).toEqual([item(2, 'menu for 2')]);
  });

  it('keeps a catalog name with a sentence end inside as one item: "2 Dr. Pepper. 1 coke"', () => {
    const names = ['Dr. Pepper', 'St. Louis Ribs'];
    expect(itemsOf('2 Dr. Pepper. 1 coke', names)).toEqual([item(2, 'dr pepper'), item(1, 'coke')]);
    expect(itemsOf('1 st. louis ribs', names)).toEqual([item(1, 'st louis ribs')]);
    // Without the catalog's word for it, the sentence end splits as before.
    expect(itemsOf('2 Dr. Pepper')).toEqual([item(2, 'dr'), item(1, 'pepper')]);
  });

  it('reads a dash before a space or a word as punctuation, not as a minus: "- 2 tea", "2 margherita - 1 coke"', () => {
    expect(itemsOf('- 2 tea')).toEqual([item(2, 'tea')]);
    expect(itemsOf('2 margherita - 1 coke')).toEqual([item(2, 'margherita'), item(1, 'coke')]);
  });

  it.each([
    'do you have tiramisu?', 'how much is a pepperoni?', '¿tienen tiramisú?', '¿cuánto cuesta la pizza?',
    'vocês têm tiramisu?', 'quanto custa a pizza?', 'Habt ihr Tiramisu?', 'Was kostet die Pizza?',
  ])('answers the question "%s" with the menu, not an order', (text) => {
    expect(parseOrderText(text).intent).toBe('menu');
  });

  it.each([
    ['2 margherita and 1 coke. how much is it?', [item(2, 'margherita'), item(1, 'coke')], 'how much is it'],
    ['quero 2 pizzas margherita, tem troco pra 100?', [item(2, 'pizzas margherita')], 'tem troco pra 100'],
    ['2 margherita und 1 cola, gibt es auch Dessert?', [item(2, 'margherita'), item(1, 'cola')], 'gibt es auch dessert'],
  ])('keeps an order beside the question in "%s", with the question as a doubt, so nothing is ordered without a word', (text, items, question) => {
    expect(parseOrderText(text)).toEqual({ intent: 'order', items, excluded: [], unsure: [{ phrase: '', written: question, reason: 'question' }] });
  });
});

describe('recall: realistic text', () => {
  it.each([
    ['2margherita', [item(2, 'margherita')]],
    ['2xmargherita', [item(2, 'margherita')]],
    ['margherita2', [item(2, 'margherita')]],
    ['2Margherita und 1Cola', [item(2, 'margherita'), item(1, 'cola')]],
  ])('separates a count glued to a word: "%s"', (text, items) => {
    expect(itemsOf(text)).toEqual(items);
  });

  it('keeps catalog words with digits whole: "2 7up", "1 4 formaggi"', () => {
    expect(itemsOf('2 7up, 1 4 formaggi', ['7up', '4 formaggi'])).toEqual([item(2, '7up'), item(1, '4 formaggi')]);
  });

  it.each([
    ['cuatro quesos por favor', [item(1, 'cuatro quesos')]],
    ['2 cuatro quesos', [item(2, 'cuatro quesos')]],
    ['cuatro pizzas cuatro quesos', [item(4, 'pizzas cuatro quesos')]],
    ['cuatro empanadas', [item(4, 'empanadas')]],
  ])('reads a number word that begins words of a name as the name: "%s"', (text, items) => {
    expect(itemsOf(text, ['Pizza Cuatro Quesos', 'Empanada'])).toEqual(items);
  });

  it.each([
    ['two tacos combo', [item(1, 'two tacos combo')]],
    // "x 6" is a count even inside a name: "coca x 6" is six cokes, as before.
    ['coca x 6', [item(6, 'coca')]],
  ])('reads a whole name as the name, and a run with a digit as a count: "%s"', (text, items) => {
    expect(itemsOf(text, ['Taco', 'tacos', 'Two Tacos Combo', 'Coca-Cola', 'coca', 'Coca-Cola x 6'])).toEqual(items);
  });

  it.each([
    // With a Taco aliased "tacos" beside a "Two Tacos Combo": two tacos, or the combo?
    ['two tacos please', ['Taco', 'tacos', 'Two Tacos Combo']],
    // With a Leche aliased "leches" beside a "Torta Tres Leches": the cake, or three milks?
    ['tres leches por favor', ['Torta Tres Leches', 'Leche', 'leches']],
    ['2 tres leches', ['Torta Tres Leches', 'Leche', 'leches']],
    // A name that begins at the count's link: two X Saladas, or two Saladas?
    ['2 x salada', ['X Salada', 'Salada']],
  ])('asks about "%s", which reads two ways with this catalogue', (text, catalog) => {
    const parsed = parseOrderText(text, { keepTogether: catalog });
    expect(parsed.items).toEqual([]);
    expect(parsed.unsure.length).toBeGreaterThan(0);
  });

  it.each([
    ['2x salada', ['X Salada', 'Salada'], [item(2, 'salada')]],
    // With an X Salada alone, only one name is there to read.
    ['2 x salada', ['X Salada'], [item(2, 'salada')]],
    ['una docena de medialunas', ['Docena de Medialunas'], [item(1, 'docena de medialunas')]],
    // "docena de", the count's own words, is no part of the name to keep together.
    ['una docena de empanadas', ['Docena de Medialunas', 'Empanada'], [{ ...item(12, 'empanadas'), inDozens: true }]],
    ['dos docenas de empanadas', ['Docena de Medialunas', 'Empanada'], [{ ...item(24, 'empanadas'), inDozens: true }]],
  ])('reads "%s" one way with this catalogue', (text, catalog, items) => {
    expect(itemsOf(text, catalog)).toEqual(items);
  });

  it.each([
    ['a dozen donuts', [item(1, 'dozen donuts')]],
    // "a dozen" is a count of its own inside "A Dozen Roses": no run of it is kept, and 24 roses of
    // a product sold by the dozen is asked about once matched.
    ['2 dozen roses', [{ ...item(24, 'roses'), inDozens: true }]],
    ['two dozen donuts', [item(2, 'dozen donuts')]],
    ['a dozen empanadas', [{ ...item(12, 'empanadas'), inDozens: true }]],
  ])('ends a count where a name begins: "%s"', (text, items) => {
    expect(itemsOf(text, ['Dozen Donuts', 'A Dozen Roses', 'Empanada'])).toEqual(items);
  });

  it('asks about a count that cannot end where a name begins: "half a dozen donuts"', () => {
    expect(parseOrderText('half a dozen donuts', { keepTogether: ['Dozen Donuts'] }).items).toEqual([]);
  });

  it('asks about Portuguese "doce" (sweet) after a product, and counts Spanish "doce" before one', () => {
    expect(parseOrderText('pão doce').unsure).toEqual([expect.objectContaining({ reason: 'quantity' })]);
    expect(itemsOf('doce empanadas')).toEqual([item(12, 'empanadas')]);
  });

  it.each([
    ['a dozen empanadas', 12], ['half a dozen empanadas', 6], ['two dozen empanadas', 24], ['2 dozen empanadas', 24],
    ['una docena de empanadas', 12], ['media docena de empanadas', 6], ['uma dúzia de empanadas', 12],
    ['meia dúzia de empanadas', 6], ['ein Dutzend Empanadas', 12], ['ein halbes Dutzend Empanadas', 6],
    ['zwölf Empanadas', 12], ['doce empanadas', 12], ['doze empanadas', 12], ['una docena y media de empanadas', 18],
    ['a dozen and a half empanadas', 18], ['uma dúzia e meia de empanadas', 18],
  ])('reads "%s" as %i', (text, quantity) => {
    // A count in dozens says so: of a product sold by the dozen, the order is asked about.
    const inDozens = /dozen|docena|dúzia|dutzend/i.test(text) ? { inDozens: true } : {};
    expect(itemsOf(text)).toEqual([{ ...item(quantity, 'empanadas'), ...inDozens }]);
  });

  it.each([
    ['Could I order 3 margheritas please? Thanks', [item(3, 'margheritas')]],
    ["I'd like to place an order for 2 margherita", [item(2, 'margherita')]],
    ['Hi! Can I get 1 pepperoni and 2 cokes please 🙏', [item(1, 'pepperoni'), item(2, 'cokes')]],
    ['Buenas noches, me pones 3 pepperoni? gracias', [item(3, 'pepperoni')]],
    ['Oi, tudo bem? Queria 2 pizzas de margherita e uma coca, por favor', [item(2, 'pizzas margherita'), item(1, 'coca')]],
    ['Moin! Wir hätten gern 2 Margherita zum Mitnehmen', [item(2, 'margherita')]],
    ['hiii can i get a margherita pleaseee', [item(1, 'margherita')]],
  ])('finds the count anywhere in a polite sentence: "%s"', (text, items) => {
    expect(itemsOf(text)).toEqual(items);
  });

  it.each([
    ['2 coke 2 margherita', [item(2, 'coke'), item(2, 'margherita')]],
    ['margherita x2 coke x3', [item(2, 'margherita'), item(3, 'coke')]],
    ['3 empanadas 2 aguas 1 tiramisu', [item(3, 'empanadas'), item(2, 'aguas'), item(1, 'tiramisu')]],
    ['pizza margherita dos', [item(2, 'pizza margherita')]],
  ])('splits items written without separators: "%s"', (text, items) => {
    expect(itemsOf(text)).toEqual(items);
  });

  it('reads curly quotes, keycaps and emoji around the order', () => {
    expect(itemsOf('“Margherita” ×2 🍕🍕, 2️⃣ „Cola“ 🥤')).toEqual([item(2, 'margherita'), item(2, 'cola')]);
  });

  it('drops an article that only introduces filler: "I\'d like to place an order for 2 margherita"', () => {
    expect(itemsOf("I'd like to place an order for 2 margherita")).toEqual([item(2, 'margherita')]);
  });

  it('drops a time of day: "2 pepperoni for pickup at 7 pm", "a las 8", "um 19 Uhr"', () => {
    expect(itemsOf('2 pepperoni for pickup at 7 pm')).toEqual([item(2, 'pepperoni')]);
    expect(itemsOf('2 pepperoni a las 8')).toEqual([item(2, 'pepperoni')]);
    expect(itemsOf('2 Pepperoni gegen 19 Uhr')).toEqual([item(2, 'pepperoni')]);
  });

  it('does not split a decimal or a time: "1,5" and "12:30" stay one token', () => {
    expect(parseOrderText('1,5 margherita').unsure).toEqual([{ phrase: 'margherita', written: '1,5 margherita', reason: 'quantity' }]);
  });
});
