import type { ConsumeMessage } from 'amqplib';
import { UNSENT_ATTEMPTS_HEADER, unsentAttemptsIn } from '../queue/headers';

/**
 * Tokens carried at most. Each stands for one attempt in a row whose mark went unanswered. The
 * reply can be 'sending' under one of them only, that of the last mark that committed, which
 * need not be the last one tried: the first is always kept (the one a first lost answer left,
 * the likeliest), with the latest after it.
 */
const TOKENS_KEPT = 16;
/** Messages remembered at most, the oldest forgotten first: far more than a worker holds in hand. */
const MESSAGES_REMEMBERED = 10_000;

/**
 * What one delivery knows of its message's attempts that called no provider (SendingMark): the
 * tokens its retry header brought, and any its own unanswered mark adds, for the next retry.
 * A token stays true for as long as it is carried: it matches only while the reply is still
 * 'sending' under it (every comparison asks for 'sending': a move to 'unknown' keeps the token,
 * for that attempt's receipts, and every other move out of 'sending' clears it), and every mark
 * that succeeds writes a new one. A dlq replay settles the letter's tokens and drops them.
 */
export interface UnsentAttempts {
  readonly tokens: readonly string[];
  /** This attempt's mark went unanswered: its token goes on with the message. */
  add(token: string): void;
}

export function unsentAttemptsOf(delivery: ConsumeMessage, remembered: readonly string[] = []): UnsentAttempts {
  const tokens = unsentAttemptsIn(delivery.properties.headers);
  for (const token of remembered) if (!tokens.includes(token)) tokens.push(token);
  return {
    get tokens() {
      return tokens.length <= TOKENS_KEPT ? [...tokens] : [tokens[0]!, ...tokens.slice(1 - TOKENS_KEPT)];
    },
    add: (token) => void tokens.push(token),
  };
}

/** The header a retry or a dead letter carries them in; none when there are none. */
export function unsentAttemptsHeader(unsent: UnsentAttempts): Record<string, string> {
  return unsent.tokens.length === 0 ? {} : { [UNSENT_ATTEMPTS_HEADER]: unsent.tokens.join(',') };
}

/**
 * The tokens of messages whose retry could not be handed on (the broker went away with
 * Postgres, as in a network split): their redelivery comes without the header, and usually to
 * this same worker, which then still knows them.
 */
export interface UnsentMemory {
  /** The delivery's tokens: its header's, and those this worker remembers for its message. */
  of(delivery: ConsumeMessage, messageKey: string): UnsentAttempts;
  /** The message goes back to its queue without its tokens: kept here for its redelivery. */
  remember(messageKey: string, unsent: UnsentAttempts): void;
  /** The message was finished, or handed on with its tokens. */
  forget(messageKey: string): void;
}

export function createUnsentMemory(): UnsentMemory {
  const byMessage = new Map<string, readonly string[]>();
  return {
    of: (delivery, messageKey) => unsentAttemptsOf(delivery, byMessage.get(messageKey)),
    remember(messageKey, unsent) {
      if (unsent.tokens.length === 0) return;
      byMessage.delete(messageKey);
      byMessage.set(messageKey, unsent.tokens);
      if (byMessage.size > MESSAGES_REMEMBERED) byMessage.delete(byMessage.keys().next().value!);
    },
    forget: (messageKey) => void byMessage.delete(messageKey),
  };
}
