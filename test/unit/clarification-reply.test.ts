import type { Problem } from '../../src/orders/decision';
import { REPLY_LANGUAGES } from '../../src/orders/detect-language';
import type { Candidate } from '../../src/orders/match';
import { parseOrderText } from '../../src/orders/parse-text';
import { loadReplyCatalogues, MAX_REPLY_CHARS, repliesIn } from '../../src/orders/replies';

const catalogues = loadReplyCatalogues();
const en = repliesIn(catalogues.en);

function unknown(phrase: string): Problem {
  return { phrase, reason: 'unknown', candidates: [] };
}

function cancelDoubt(phrase: string): Problem {
  return { phrase, reason: 'cancel', candidates: [] };
}

const TOO_LONG: Problem = { phrase: '', reason: 'too_long', candidates: [] };

function candidate(name: string): Candidate {
  return { sku: name, name, price: '8.50', currency: 'EUR', score: 0.5, unexplained: [], named: false };
}

describe('clarification replies', () => {
  it('says that nothing was cancelled, and how to cancel, when a cancel was negated or said beside an order', () => {
    expect(en.clarification([cancelDoubt("don't cancel")])).toContain(
      '"don\'t cancel": we have not cancelled anything. To cancel your latest order, reply CANCEL on its own.',
    );
    expect(en.clarification([{ phrase: 'cancel coke', reason: 'cancel', candidates: [candidate('Coke')] }])).not.toContain('did you mean');
  });

  it.each([
    ['en', 'CANCEL'], ['es', 'solo CANCELAR'], ['pt', 'só CANCELAR'], ['de', 'nur STORNO'],
  ] as const)('tells a %s customer to send "%s", which is itself read as a cancel', (language, words) => {
    expect(repliesIn(catalogues[language]).clarification([cancelDoubt('no cancelar')])).toContain(words);
    expect(parseOrderText(words).intent).toBe('cancel');
  });

  it('asks for a shorter message, naming both limits, when the message was too long to read', () => {
    expect(en.clarification([TOO_LONG])).toBe(
      "Sorry, we couldn't place your order yet. Your message is too long for us to read in full: please send at most 20 items" +
        ' in 1000 characters or fewer. Reply MENU to see everything we offer.',
    );
  });

  it('lists a problem repeated in the message once', () => {
    const reply = en.clarification([unknown('no a'), unknown('no b'), unknown('no a'), unknown('no a')]);
    expect(reply).toBe(`Sorry, we couldn't place your order yet. We don't have anything like "no a". We don't have anything like "no b". Reply MENU to see everything we offer.`);
  });

  it('writes out the first 5 problems and counts the rest: "And 21 more we could not read."', () => {
    const letters = Array.from({ length: 26 }, (_, i) => String.fromCharCode(97 + i));
    const reply = en.clarification(Array.from({ length: 160 }, (_, i) => unknown(`no ${letters[i % 26]}`)));
    expect(reply.match(/We don't have anything like/g)).toHaveLength(5);
    expect(reply).toContain('"no e". And 21 more we could not read. Reply MENU');
  });

  it('quotes a long phrase and a long product name shortened to 60 characters, ending in "…"', () => {
    const reply = en.clarification([{ phrase: 'w'.repeat(900), reason: 'ambiguous', candidates: [candidate('N'.repeat(300))] }]);
    expect(reply).toContain(`"${'w'.repeat(59)}…": did you mean ${'N'.repeat(59)}…?`);
  });

  it.each(REPLY_LANGUAGES)('keeps the longest possible %s clarification within 1,600 characters, Twilio\'s limit', (language) => {
    const replies = repliesIn(catalogues[language]);
    // Distinct from their first characters, so that no two read alike once shortened; emoji take two UTF-16 units,
    // and the odd prefixes put the cut inside one.
    const long = (i: number, size: number) => `${String(i).padStart(3 + (i % 2), '0')}${'🍕'.repeat(size)}`;
    const problems: Problem[] = Array.from({ length: 500 }, (_, i) => ({
      phrase: long(i, 500),
      reason: 'ambiguous',
      candidates: [1, 2, 3].map((n) => candidate(long(i * 3 + n, 500))),
    }));
    const reply = replies.clarification(problems);
    expect(reply.length).toBeLessThanOrEqual(MAX_REPLY_CHARS);
    expect(reply).toContain(' 495 ');
    expect(reply).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/);
    expect(replies.clarification([...problems.slice(0, 3), TOO_LONG, cancelDoubt('no cancelar')]).length)
      .toBeLessThanOrEqual(MAX_REPLY_CHARS);
  });

  it('cuts a shop\'s own clarification text longer than the limit to 1,600 characters', () => {
    const replies = repliesIn({ ...catalogues.en, clarification: `${'Sorry. '.repeat(300)}{problems}` });
    expect(replies.clarification([unknown('fanta')])).toHaveLength(MAX_REPLY_CHARS);
  });
});
