/** The default for a failure: the message climbs the retry tiers. */
export class RetryableError extends Error {
  readonly code = 'RETRYABLE';
  constructor(message: string, readonly retryAfterMs?: number) {
    super(message);
  }
}

/** The one named way out: no retry can fix this, so the message goes to the dead-letter queue now. */
export class PermanentError extends Error {
  readonly code = 'PERMANENT';
}
