import { isAcknowledgement } from '../../src/orders/acknowledgement';

describe('thanks or agreement alone, which gets no reply', () => {
  it.each(['thanks', 'Thanks!', 'ok 👍', '👍', '👍🏽', '🙏', '❤️', 'k', 'Thank you so much!!', 'muchas gracias', 'valeu', 'obrigada 😊', 'danke schön', 'alles klar'])(
    '%j acknowledges',
    (text) => expect(isAcknowledgement(text)).toBe(true),
  );

  it('leaves a word the catalog sells to be read as an order: "super 👍" with a product named Super', () => {
    expect(isAcknowledgement('super 👍')).toBe(true);
    expect(isAcknowledgement('super 👍', ['Super', 'Coca-Cola'])).toBe(false);
    expect(isAcknowledgement('thanks', ['Super', 'Pizza of the day'])).toBe(true);
  });

  it.each(['🍕🍕', '2 pizzas', 'ok 2 pizzas', 'great, 2 more cokes', 'no thanks', 'hola', 'ok, cancel', '?', '', 'thanks, where is my order?'])(
    '%j asks for something, or says nothing: it is read as before',
    (text) => expect(isAcknowledgement(text)).toBe(false),
  );
});
