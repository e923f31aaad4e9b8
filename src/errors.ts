/**
 * Every error wagate raises itself is a WagateError with a code from this closed list, in
 * the manner of porsager/postgres's errors.js: one base class, stable string codes. The
 * code alone decides whether another try can help, the exit status of a command that ends
 * with it, and the HTTP status of a request that ends with it. Errors of the libraries
 * (Postgres, AMQP, undici) are classified in one place per library: db/postgres-errors.ts,
 * queue/amqp-errors.ts, replies/reply-clients.ts.
 */
const EXIT_FAILURE = 1;
/** A command line a person must correct; the usage text is printed with it. */
const EXIT_USAGE = 2;

interface ErrorCodeMeaning {
  /** Whether the same work may succeed later (the default for the worker: retry unless told otherwise). */
  retryable: boolean;
  exitStatus: number;
  httpStatus: number;
}

export const ERROR_CODES = {
  USAGE_INVALID: { retryable: false, exitStatus: EXIT_USAGE, httpStatus: 400 },
  CONFIG_INVALID: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 500 },
  CATALOG_INVALID: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 422 },
  /** An operator asked for something the records do not allow (a reply not in status unknown). */
  OPERATION_REFUSED: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 409 },
  NOT_FOUND: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 404 },
  /** The gateway a `wagate send` posted to did not accept the sample. */
  GATEWAY_REFUSED: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 502 },
  /** A `wagate send` or `wagate wait-ready` could not reach the gateway at all. */
  GATEWAY_UNREACHABLE: { retryable: true, exitStatus: EXIT_FAILURE, httpStatus: 502 },
  /** A file named on the command line cannot be read. */
  FILE_UNREADABLE: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 400 },
  MIGRATION_FAILED: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 500 },
  /** The database lacks migrations the running code needs: `wagate migrate` must run first. */
  SCHEMA_BEHIND: { retryable: true, exitStatus: EXIT_FAILURE, httpStatus: 503 },
  DATABASE_UNAVAILABLE: { retryable: true, exitStatus: EXIT_FAILURE, httpStatus: 503 },
  /** Postgres refused our login or lacks the database: waiting cannot fix it, a person must. */
  DATABASE_LOGIN_REFUSED: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 503 },
  /** statement_timeout cancelled a query: the database answers, but too slowly for this one. */
  DATABASE_STATEMENT_TIMEOUT: { retryable: true, exitStatus: EXIT_FAILURE, httpStatus: 503 },
  /** Two transactions locked each other; Postgres cancelled one, which may simply run again. */
  DATABASE_DEADLOCK: { retryable: true, exitStatus: EXIT_FAILURE, httpStatus: 503 },
  /** A ledger commit outlived its deadline; it may still commit, and a retry finds a duplicate. */
  LEDGER_TIMEOUT: { retryable: true, exitStatus: EXIT_FAILURE, httpStatus: 503 },
  BROKER_UNAVAILABLE: { retryable: true, exitStatus: EXIT_FAILURE, httpStatus: 503 },
  /** A queue exists with other arguments than this configuration declares; only a migration fixes it. */
  TOPOLOGY_CONFLICT: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 503 },
  /** A failure worth another try, such as a reply the provider did not take. */
  RETRYABLE: { retryable: true, exitStatus: EXIT_FAILURE, httpStatus: 503 },
  /** The one named way out of the retries: the message goes to the dead-letter queue now. */
  PERMANENT: { retryable: false, exitStatus: EXIT_FAILURE, httpStatus: 500 },
  /** A bug or an impossible state; retried like any failure, since that is the default. */
  INTERNAL: { retryable: true, exitStatus: EXIT_FAILURE, httpStatus: 500 },
} as const satisfies Record<string, ErrorCodeMeaning>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class WagateError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WagateError';
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  get exitStatus(): number {
    return ERROR_CODES[this.code].exitStatus;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].httpStatus;
  }
}

export function isWagateError(error: unknown, code?: ErrorCode): error is WagateError {
  return error instanceof WagateError && (code === undefined || error.code === code);
}

/** The exit status for any error a command ends with: its code's, or a plain failure. */
export function exitStatusOf(error: unknown): number {
  return error instanceof WagateError ? error.exitStatus : EXIT_FAILURE;
}

/** Raised for any invalid setting; the message names the variable and never its value. */
export class ConfigError extends WagateError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/** A command line a person must correct; printed with the usage text. */
export class UsageError extends WagateError {
  constructor(message: string) {
    super('USAGE_INVALID', message);
  }
}

/** The default for a failure: the message climbs the retry tiers. */
export class RetryableError extends WagateError {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super('RETRYABLE', message);
  }
}

/** The one named way out: no retry can fix this, so the message goes to the dead-letter queue now. */
export class PermanentError extends WagateError {
  constructor(message: string) {
    super('PERMANENT', message);
  }
}

/** More problems than this in one input are left out of its description, to keep it readable. */
const ISSUES_DESCRIBED_AT_MOST = 5;

/** A zod failure as text that names fields and problems but never echoes input values. */
export function describeIssues(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  return issues
    .slice(0, ISSUES_DESCRIBED_AT_MOST)
    .map((issue) => `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`)
    .join('; ');
}

/** fetch() says only "fetch failed"; the reason (ECONNREFUSED, a DNS failure, a timeout) is in its cause. */
export function describeFetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.message && !cause.message.includes(cause.code) ? `: ${cause.message}` : ''}`;
  return cause?.message ?? (error as Error).message;
}
