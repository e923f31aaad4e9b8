import { randomUUID } from 'node:crypto';
import type { ConsumeMessage } from 'amqplib';
import { UNSENT_ATTEMPTS_HEADER } from '../../src/queue/headers';
import { unsentAttemptsHeader, unsentAttemptsOf } from '../../src/worker/unsent-attempts';

const deliveryWith = (tokens: string[]) => ({ properties: { headers: { [UNSENT_ATTEMPTS_HEADER]: tokens.join(',') } } }) as unknown as ConsumeMessage;

describe('the tokens of unanswered marks a retry carries', () => {
  it('carries every token while there are few', () => {
    const tokens = Array.from({ length: 3 }, () => randomUUID());
    const unsent = unsentAttemptsOf(deliveryWith(tokens));
    const added = randomUUID();
    unsent.add(added);
    expect(unsent.tokens).toEqual([...tokens, added]);
  });

  it('keeps the first token beside the latest when there are more than it carries, through every retry', () => {
    // The first mark committed and its answer was lost; the next ones failed before committing:
    // the reply is 'sending' under the first token, which dropping it would leave unknown, never sent.
    const tokens = Array.from({ length: 30 }, () => randomUUID());
    let unsent = unsentAttemptsOf(deliveryWith(tokens.slice(0, 1)));
    for (const token of tokens.slice(1)) {
      unsent.add(token);
      unsent = unsentAttemptsOf(deliveryWith(unsentAttemptsHeader(unsent)[UNSENT_ATTEMPTS_HEADER]!.split(',')));
    }
    expect(unsent.tokens).toHaveLength(16);
    expect(unsent.tokens[0]).toBe(tokens[0]);
    expect(unsent.tokens.slice(1)).toEqual(tokens.slice(-15));
  });
});
