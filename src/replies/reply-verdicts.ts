/**
 * Which provider answers mean "not taken, try again", "refused for good" or "maybe taken".
 * Only an answer that says the message was not taken may be retried: a 500, 502 or 504 can
 * come after the provider accepted the message, and so can a 503 that is not the provider's
 * own, so, like a timeout, it is unknown and never resent automatically. The README's
 * "Provider answers" table lists the same cases.
 */
export type Verdict = 'retry' | 'permanent' | 'unknown';

/** The parts of a Graph API answer the worker reads. */
export interface MetaAnswer {
  messages?: { id?: string }[];
  error?: { code?: number; message?: string; is_transient?: boolean };
}

/**
 * Graph codes documented as "not taken, wait and retry": 2 API Service (temporary downtime),
 * throttling (4, 17, 32, 341, 613, 80007, 130429, 131048 spam rate limit, 131056 pair rate
 * limit), 131016 service unavailable, 131057 account in maintenance mode (a throughput upgrade,
 * answered with a 500), 133004 server temporarily unavailable.
 */
const META_NOT_TAKEN_CODES = new Set([2, 4, 17, 32, 341, 613, 80007, 130429, 131016, 131048, 131056, 131057, 133004]);

/**
 * Graph codes that name a refusal no retry within the tiers (minutes) can fix. Meta answers
 * some of them with a 500 (3 capability, 131045 registration certificate, 133000 incomplete
 * deregistration), and its own advice is to act on the code rather than the HTTP status.
 */
const META_REFUSED_CODES = new Set([
  // Authorization: the token, or what the app may do (200-299 are checked as a range).
  0, 3, 10, 190,
  // Integrity: the account restricted or locked, for days rather than minutes.
  368, 130497, 131031,
  // The business number: deleted, unnamed, unpaid, unregistered.
  33, 131037, 131042, 131045, 133000, 133010,
  // This message or this recipient: parameters, 131047 outside the 24-hour window, an experiment's holdout.
  100, 130403, 130472, 131005, 131008, 131009, 131021, 131026, 131047, 135000,
]);

/** Graph codes that say something went wrong without saying the message was refused. */
const META_AMBIGUOUS_CODES = new Set([1, 131000]);

function isMetaRefusal(code: number): boolean {
  return META_REFUSED_CODES.has(code) || (code >= 200 && code <= 299);
}

/**
 * A 503 says "not taken" only in the provider's own words. One without them is a proxy's or a
 * gateway's (an egress proxy, a service mesh): Envoy answers 503 when the upstream connection
 * resets before the answer's headers, after the request went out, so the provider may have
 * taken the message. A 429 without them is still retried: a proxy's own 429 is a local rate
 * limit, given before anything is forwarded.
 */
function unavailableVerdict(fromProvider: boolean): Verdict {
  return fromProvider ? 'retry' : 'unknown';
}

/**
 * 408 Request Timeout and 425 Too Early without the provider's own words: a proxy in between
 * (an egress proxy, a load balancer) that never had the whole request, or would not forward it
 * yet, so nothing reached the provider. RFC 9110 lets a client repeat such a request; taken
 * for a refusal, it sent the message to the dead letters at once.
 */
function notForwarded(status: number, fromProvider: boolean): boolean {
  return !fromProvider && (status === 408 || status === 425);
}

/** fromProvider: the answer carried Graph's own `error` object (code undefined otherwise). */
export function metaVerdict(status: number, code: number | undefined, isTransient: boolean, fromProvider = code !== undefined): Verdict {
  if (code !== undefined && META_NOT_TAKEN_CODES.has(code)) return 'retry';
  // The code names the refusal; a 503 or `is_transient` around it does not make it go away.
  if (code !== undefined && isMetaRefusal(code)) return 'permanent';
  if (status === 429 || isTransient || notForwarded(status, fromProvider)) return 'retry';
  if (status === 503) return unavailableVerdict(fromProvider);
  if (code !== undefined && META_AMBIGUOUS_CODES.has(code)) return 'unknown';
  if (status >= 500) return 'unknown';
  // Any other 4xx was refused, even with a code not listed here.
  return 'permanent';
}

/**
 * Twilio's codes for "not taken": 20429 Too Many Requests, 20503 Service Unavailable, 21611
 * the From number's queue is full (the message is not created), 21730 system under maintenance,
 * 63017 the account's rate limit, 63018 the channel's rate limit (WhatsApp's own throughput
 * and spam limits). 63018 mostly arrives later, on the message's status, but Twilio's remedy
 * is to wait, as for 63017, so an answer carrying it is retried.
 */
const TWILIO_NOT_TAKEN_CODES = new Set([20429, 20503, 21611, 21730, 63017, 63018]);

/** code: the numeric `code` of Twilio's own JSON error, which every answer of its own carries; undefined for anyone else's. */
export function twilioVerdict(status: number, code: number | undefined): Verdict {
  if (status === 429 || (code !== undefined && TWILIO_NOT_TAKEN_CODES.has(code)) || notForwarded(status, code !== undefined)) return 'retry';
  if (status === 503) return unavailableVerdict(code !== undefined);
  // 500 (20500 Internal Server Error), 502, 504: Twilio may have queued the message.
  if (status >= 500) return 'unknown';
  // 4xx: 20003 credentials, 21211 invalid To, 21610 unsubscribed, 63016 outside the window, ...
  return 'permanent';
}
