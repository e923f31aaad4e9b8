import type { ConsumeMessage } from 'amqplib';
import { UNSENT_ATTEMPTS_HEADER, unsentAttemptsIn } from '../queue/headers';

/**
 * Tokens carried at most. Each stands for one attempt in a row whose mark went unanswered; the
 * reply can be 'sending' under one of them only, so a longer trail would add bytes, not reach.
 */
const TOKENS_KEPT = 8;

/**
 * What one delivery knows of its message's attempts that called no provider (SendingMark): the
 * tokens its retry header brought, and any its own unanswered mark adds, for the next retry.
 * A token stays true for as long as it is carried: it matches only while the reply is still
 * 'sending' under it, and every mark that succeeds writes a new one (every move out of
 * 'sending' clears it). A dlq replay settles the letter's tokens and drops them.
 */
export interface UnsentAttempts {
  readonly tokens: readonly string[];
  /** This attempt's mark went unanswered: its token goes on with the message. */
  add(token: string): void;
}

export function unsentAttemptsOf(delivery: ConsumeMessage): UnsentAttempts {
  const tokens = unsentAttemptsIn(delivery.properties.headers);
  return {
    get tokens() {
      return tokens.slice(-TOKENS_KEPT);
    },
    add: (token) => void tokens.push(token),
  };
}

/** The header a retry or a dead letter carries them in; none when there are none. */
export function unsentAttemptsHeader(unsent: UnsentAttempts): Record<string, string> {
  return unsent.tokens.length === 0 ? {} : { [UNSENT_ATTEMPTS_HEADER]: unsent.tokens.join(',') };
}
