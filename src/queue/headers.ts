/** Retries a message has had so far; its tries are this plus one. */
export const ATTEMPT_HEADER = 'x-wagate-attempt';
/** Epoch ms before which a provider asked us not to call again (its Retry-After). */
export const NOT_BEFORE_HEADER = 'x-wagate-not-before';
/** Why the last try failed; set on a retry and on a dead letter. */
export const LAST_ERROR_HEADER = 'x-wagate-last-error';
/** When the worker dead-lettered the message (ISO 8601). */
export const DEAD_AT_HEADER = 'x-wagate-dead-at';

/** Headers the broker adds when it dead-letters or redelivers; a republished copy must not carry them. */
const BROKER_HEADERS = ['x-death', 'x-delivery-count', 'x-first-death-exchange', 'x-first-death-queue', 'x-first-death-reason'];

export function withoutBrokerHeaders(headers: Record<string, unknown> | undefined, alsoDrop: string[] = []): Record<string, string | number> {
  const copy: Record<string, unknown> = { ...(headers ?? {}) };
  for (const name of [...BROKER_HEADERS, ...alsoDrop]) delete copy[name];
  return copy as Record<string, string | number>;
}
/**
 * Tokens (comma-separated UUIDs) of a message's attempts whose mark of its reply as 'sending'
 * went unanswered: none of them called the provider (src/worker/unsent-attempts.ts).
 */
export const UNSENT_ATTEMPTS_HEADER = 'x-wagate-unsent-attempts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The tokens of UNSENT_ATTEMPTS_HEADER, oldest first; anything that is not a UUID is ignored. */
export function unsentAttemptsIn(headers: Record<string, unknown> | undefined): string[] {
  const header = headers?.[UNSENT_ATTEMPTS_HEADER];
  return typeof header === 'string' || Buffer.isBuffer(header) ? String(header).split(',').filter((token) => UUID.test(token)) : [];
}
