/**
 * Which provider answers mean "not taken, try again", "refused for good" or "maybe taken".
 * Only an answer that says the message was not taken may be retried: a 500, 502 or 504 can
 * come after the provider accepted the message, so, like a timeout, it is unknown and never
 * resent automatically. The README's "Provider answers" table lists the same cases.
 */
export type Verdict = 'retry' | 'permanent' | 'unknown';

/** The parts of a Graph API answer the worker reads. */
export interface MetaAnswer {
  messages?: { id?: string }[];
  error?: { code?: number; message?: string; is_transient?: boolean };
}

/**
 * Graph codes documented as "not taken, wait and retry": 2 API Service (temporary downtime),
 * throttling (4, 17, 32, 613, 80007, 130429, 131048 spam rate limit, 131056 pair rate limit),
 * 131016 service unavailable, 133004 server temporarily unavailable.
 */
const META_NOT_TAKEN_CODES = new Set([2, 4, 17, 32, 613, 80007, 130429, 131016, 131048, 131056, 133004]);
/** Graph codes that say something went wrong without saying the message was refused. */
const META_AMBIGUOUS_CODES = new Set([1, 131000]);

export function metaVerdict(status: number, code: number | undefined, isTransient: boolean): Verdict {
  if (code !== undefined && META_NOT_TAKEN_CODES.has(code)) return 'retry';
  if (status === 429 || status === 503 || isTransient) return 'retry';
  if (code !== undefined && META_AMBIGUOUS_CODES.has(code)) return 'unknown';
  if (status >= 500) return 'unknown';
  // Any other 4xx was refused: invalid parameters, tokens, permissions, 131047 outside the 24-hour window.
  return 'permanent';
}

/**
 * Twilio's codes for "not taken": 20429 Too Many Requests, 20503 Service Unavailable, 21611
 * the From number's queue is full (the message is not created), 63017 the account's rate limit.
 */
const TWILIO_NOT_TAKEN_CODES = new Set([20429, 20503, 21611, 63017]);

export function twilioVerdict(status: number, code: number | undefined): Verdict {
  if (status === 429 || status === 503 || (code !== undefined && TWILIO_NOT_TAKEN_CODES.has(code))) return 'retry';
  // 500 (20500 Internal Server Error), 502, 504: Twilio may have queued the message.
  if (status >= 500) return 'unknown';
  // 4xx: 20003 credentials, 21211 invalid To, 21610 unsubscribed, 63016 outside the window, ...
  return 'permanent';
}
