import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { detectLanguage, REPLY_LANGUAGES } from '../../src/orders/detect-language';
import { DEFAULT_REPLY_TEXTS_DIR, loadReplyCatalogues, repliesIn } from '../../src/orders/replies';

const product = { sku: 'PIZ-MARG', name: 'Pizza Margherita', price: '8.50', currency: 'EUR' };

describe('the language of a message', () => {
  it.each([
    ['two margherita and one coke please', 'en'],
    ['hola, quiero dos margherita y una coca cola', 'es'],
    ['oi, queria duas pizzas e uma coca, obrigado', 'pt'],
    ['hallo, ich möchte zwei Pizza und eine Cola, danke', 'de'],
    ['buenos días, ¿dónde está mi pedido?', 'es'],
    ['wo ist meine Bestellung', 'de'],
    ['Do you have tiramisu?', 'en'],
    ['Do you deliver?', 'en'],
    ['pizza do dia, por favor, obrigado', 'pt'],
    ['Buen día, quería 2 empanadas', 'es'],
    ['bom dia, queria 2 empanadas', 'pt'],
    // Spanish typed without its accents: "dia" and "queria" are Portuguese words too.
    ['Buen dia, queria 2 empanadas', 'es'],
    ['Queria una pizza', 'es'],
    ['Queria 2 coxinhas', 'pt'],
    ['pizza da casa, 2', 'pt'],
  ])('reads %j as %s', (text, language) => {
    expect(detectLanguage(text)).toBe(language);
  });

  it('does not guess from a message without telling words', () => {
    expect(detectLanguage('2 pizzas')).toBeNull();
    expect(detectLanguage('1 coke')).toBeNull();
    expect(detectLanguage('🍕🍕')).toBeNull();
    // "as" is English as much as Portuguese.
    expect(detectLanguage('2 margherita as soon as possible')).toBeNull();
  });
});

describe('reply catalogues', () => {
  const catalogues = loadReplyCatalogues();

  it('has every text in every language, with the cancel hint in each confirmation', () => {
    const cancelWord = { en: 'CANCEL', es: 'CANCELAR', pt: 'CANCELAR', de: 'STORNO' };
    for (const language of REPLY_LANGUAGES) {
      const confirmation = repliesIn(catalogues[language]).orderConfirmation('7', null, [{ product, quantity: 2 }], '17.00', 'EUR');
      expect(confirmation).toContain('#7');
      expect(confirmation).toContain('2 × Pizza Margherita (EUR 8.50)');
      expect(confirmation).toContain(cancelWord[language]);
    }
  });

  it('localises clarifications, menu, status and cancel replies', () => {
    const es = repliesIn(catalogues.es);
    expect(es.clarification([{ phrase: 'fanta', reason: 'unknown', candidates: [] }])).toBe(
      'Lo sentimos, aún no pudimos registrar tu pedido. No tenemos nada parecido a "fanta". Responde MENÚ para ver todo lo que ofrecemos.',
    );
    expect(repliesIn(catalogues.de).orderStatus('3', 'cancelled', '2.50', 'EUR')).toBe('Deine Bestellung #3 (EUR 2.50) ist storniert.');
    expect(repliesIn(catalogues.pt).cancelled('3')).toBe('O seu pedido #3 foi cancelado.');
    expect(repliesIn(catalogues.pt).menu([product])).toMatch(/^O nosso cardápio:\n• Pizza Margherita: EUR 8\.50\n/);
    expect(repliesIn(catalogues.en).clarification([{ phrase: 'marg', reason: 'ambiguous', candidates: [{ ...product, score: 0.6, unexplained: [], named: false }, { ...product, name: 'Margarita Cocktail', score: 0.6, unexplained: [], named: false }] }]))
      .toContain('"marg": did you mean Pizza Margherita or Margarita Cocktail? To order a product we suggested, send your order again with its name. Reply MENU');
  });

  it('says once, after the suggestions written out, how to take one up: a "yes" to a suggestion places nothing', () => {
    const suggested = (phrase: string) => ({ phrase, reason: 'unknown' as const, candidates: [{ ...product, score: 0.6, unexplained: [], named: false }] });
    const unknown = { phrase: 'fanta', reason: 'unknown' as const, candidates: [] };
    const de = repliesIn(catalogues.de);
    expect(de.clarification([suggested('marg'), unknown, suggested('margh')])).toBe(
      'Leider konnten wir deine Bestellung noch nicht aufnehmen. "marg": meintest du Pizza Margherita? Wir haben nichts, was "fanta" ähnelt. '
      + '"margh": meintest du Pizza Margherita? Um etwas Vorgeschlagenes zu bestellen, schick deine Bestellung noch einmal mit seinem Namen. '
      + 'Antworte MENÜ, um alles zu sehen, was wir anbieten.',
    );
    expect(repliesIn(catalogues.es).clarification([suggested('marg')])).toContain('Para pedir algo que te sugerimos, envía tu pedido de nuevo con su nombre.');
    expect(repliesIn(catalogues.pt).clarification([suggested('marg')])).toContain('Para pedir algo que sugerimos, envie o seu pedido de novo com o nome dele.');
    expect(de.clarification([unknown])).not.toContain('Vorgeschlagenes');
    // Counted, not written out, a suggestion gets no hint: the customer cannot see it.
    const fiveUnknown = ['a', 'b', 'c', 'd', 'e'].map((phrase) => ({ ...unknown, phrase }));
    expect(de.clarification([...fiveUnknown, suggested('marg')])).not.toContain('Vorgeschlagenes');
  });

  it('reads a shop\'s own copies from REPLY_TEXTS_DIR and names a file that lacks a text', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wagate-texts-'));
    cpSync(DEFAULT_REPLY_TEXTS_DIR, dir, { recursive: true });
    const en = JSON.parse(readFileSync(path.join(dir, 'en.json'), 'utf8')) as Record<string, string>;
    writeFileSync(path.join(dir, 'en.json'), JSON.stringify({ ...en, cancelled: 'Order #{orderId}: gone.' }));
    expect(repliesIn(loadReplyCatalogues(dir).en).cancelled('9')).toBe('Order #9: gone.');
    delete en.menu;
    writeFileSync(path.join(dir, 'en.json'), JSON.stringify(en));
    expect(() => loadReplyCatalogues(dir)).toThrow(/en\.json lacks or misspells the texts menu/);
  });

  it('gives a shop\'s copies written before the cancel and too-long texts existed wagate\'s own texts for them, in their language', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wagate-texts-'));
    cpSync(DEFAULT_REPLY_TEXTS_DIR, dir, { recursive: true });
    const es = JSON.parse(readFileSync(path.join(dir, 'es.json'), 'utf8')) as Record<string, string>;
    const shipped = es.problemCancel;
    for (const key of ['problemCancel', 'problemTooLong', 'problemsMore', 'suggestionHint']) delete es[key];
    writeFileSync(path.join(dir, 'es.json'), JSON.stringify({ ...es, problemUnknown: 'No tenemos "{phrase}".' }));
    const loaded = loadReplyCatalogues(dir).es;
    expect([loaded.problemUnknown, loaded.problemCancel]).toEqual(['No tenemos "{phrase}".', shipped]);
    expect(loaded.suggestionHint).toContain('te sugerimos');
  });
});
