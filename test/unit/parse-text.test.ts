import { mentionsConjunction, parseOrderText, type ItemPhrase } from '../../src/orders/parse-text';

function itemsOf(text: string): ItemPhrase[] {
  const parsed = parseOrderText(text);
  expect(parsed.intent).toBe('order');
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

  it('reads a German order, dropping "ich hätte gerne" and splitting on "und"', () => {
    expect(itemsOf('Ich hätte gerne zwei Pizza Salami und eine Cola')).toEqual([item(2, 'pizza salami'), item(1, 'cola')]);
  });

  it('reads a Portuguese order, dropping "quero", splitting on "e" and keeping the accent in "guaraná"', () => {
    expect(itemsOf('quero duas pizzas e um guaraná')).toEqual([item(2, 'pizzas'), item(1, 'guaraná')]);
  });

  it('keeps "con" inside a product and its accent: "3 cafés con leche"', () => {
    expect(itemsOf('3 cafés con leche')).toEqual([item(3, 'cafés con leche')]);
  });

  it('never splits on "with": "a large coffee with milk please" is one item of 1', () => {
    expect(itemsOf('a large coffee with milk please')).toEqual([item(1, 'large coffee with milk')]);
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
    expect(itemsOf('um pão de queijo por favor')).toEqual([item(1, 'pão de queijo')]);
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

  it('keeps the leading quantity and leaves a second, trailing one in the phrase so matching fails', () => {
    expect(itemsOf('2 margherita x3')).toEqual([item(2, 'margherita x3')]);
  });

  it('passes 0 and quantities over 99 through unchanged for the caller to refuse', () => {
    expect(itemsOf('0 pizzas, 150 cokes')).toEqual([item(0, 'pizzas'), item(150, 'cokes')]);
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
    const parse = (text: string) => parseOrderText(text, { keepTogether }).items;
    expect(parse('2 fish and chips and a coke')).toEqual([item(2, 'fish and chips'), item(1, 'coke')]);
    expect(parse('one mac & cheese + 2 fish & chips')).toEqual([item(1, 'mac and cheese'), item(2, 'fish and chips')]);
    // Not the catalog's words in a row: split as usual.
    expect(parse('2 fish and 3 chips')).toEqual([item(2, 'fish'), item(3, 'chips')]);
    expect(itemsOf('2 fish and chips')).toEqual([item(2, 'fish'), item(1, 'chips')]);
  });

  it('says whether a text has a conjunction that a catalog name could contain', () => {
    expect(mentionsConjunction('2 fish & chips')).toBe(true);
    expect(mentionsConjunction('dos tacos y una coca')).toBe(true);
    expect(mentionsConjunction('2x margherita, one coke')).toBe(false);
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
    'stornieren', 'bitte stornieren', 'please cancel my order 🙏',
  ])('takes "%s" as cancel', (text) => {
    expect(parseOrderText(text)).toEqual({ intent: 'cancel', items: [] });
  });

  it.each([
    'status', 'order status', 'where is my order?', "where's my food", 'estado de mi pedido', 'dónde está mi pedido',
    'donde esta mi pedido', 'status do pedido', 'cadê meu pedido', 'wo ist meine Bestellung', 'Bestellstatus',
  ])('takes "%s" as order_status', (text) => {
    expect(parseOrderText(text)).toEqual({ intent: 'order_status', items: [] });
  });

  it.each([
    'menu', 'Menú', 'help', 'ayuda', 'cardápio', 'ajuda', 'hilfe', 'Speisekarte', 'karte',
    'hi', 'Hello!', 'hola', 'Olá', 'oi', 'hallo', 'Buenas tardes 👋', 'can I see the menu please',
    'Hallo, die Karte bitte', 'preciso de ajuda',
  ])('takes "%s" as menu', (text) => {
    expect(parseOrderText(text)).toEqual({ intent: 'menu', items: [] });
  });

  it('matches cancel words only whole: "2 cancelled pizzas" is an order', () => {
    expect(itemsOf('2 cancelled pizzas')).toEqual([item(2, 'cancelled pizzas')]);
  });

  it('ignores a cancel or status word in a message longer than 8 words', () => {
    expect(parseOrderText('2 margherita, 1 pepperoni, 3 coke and do not cancel anything').intent).toBe('order');
    expect(parseOrderText('1 status pizza, 2 garlic bread, 2 coke and 1 water').intent).toBe('order');
  });

  it('keeps a menu word that names a product as an order: "2 kids menu", "un menú del día"', () => {
    expect(itemsOf('2 kids menu')).toEqual([item(2, 'kids menu')]);
    expect(itemsOf('un menú del día')).toEqual([item(1, 'menú del día')]);
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
    expect(parseOrderText(text)).toEqual({ intent: 'order', items: [] });
  });

  it('keeps an unknown phrase for the matcher to reject', () => {
    expect(itemsOf('something nice')).toEqual([item(1, 'something nice')]);
  });

  it('drops courtesy around items: "2 tea, thanks"', () => {
    expect(itemsOf('2 tea, thanks')).toEqual([item(2, 'tea')]);
  });

  it('reads only the first 1000 characters', () => {
    const [only] = itemsOf(`2 ${'a'.repeat(5000)}`);
    expect(only!.quantity).toBe(2);
    expect(only!.phrase).toHaveLength(998);
  });

  it('counts the 1000-character cap in characters, not UTF-16 units: 500 emoji leave room for an item', () => {
    expect(itemsOf(`${'🍕'.repeat(500)} 2 tea`)).toEqual([item(2, 'tea')]);
  });

  it('keeps the first 20 items of a longer list', () => {
    const text = Array.from({ length: 30 }, (_, i) => `item${i + 1}`).join(', ');
    const phrases = itemsOf(text).map((i) => i.phrase);
    expect(phrases).toHaveLength(20);
    expect(phrases[0]).toBe('item1');
    expect(phrases[19]).toBe('item20');
  });
});
