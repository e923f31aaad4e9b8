import { WagateError } from '../errors';

/** Node's socket errors: the broker is not there, or the network between us dropped. */
const SOCKET_ERRNOS = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'];
/** AMQP 0-9-1 reply code 320 CONNECTION_FORCED: the broker closed the connection (shutdown, operator). */
const AMQP_CONNECTION_FORCED = 320;

/**
 * The one place that reads amqplib's failures: socket errnos, its IllegalOperationError
 * (an operation on a channel or connection that has closed) and AMQP reply codes. Null for
 * anything else (a precondition failed, access refused): waiting for the broker fixes none of those.
 */
export function classifyAmqpError(error: unknown): 'BROKER_UNAVAILABLE' | null {
  const failure = error as { code?: unknown; name?: unknown } | null;
  if (typeof failure?.code === 'string' && SOCKET_ERRNOS.includes(failure.code)) return 'BROKER_UNAVAILABLE';
  if (failure?.code === AMQP_CONNECTION_FORCED || failure?.name === 'IllegalOperationError') return 'BROKER_UNAVAILABLE';
  return null;
}

/** The error as a WagateError when it means the broker is away; otherwise unchanged. */
export function asBrokerError(error: unknown): unknown {
  if (error instanceof WagateError || classifyAmqpError(error) === null) return error;
  return new WagateError('BROKER_UNAVAILABLE', `the broker is unavailable: ${(error as Error).message}`, { cause: error });
}

/** AMQP reply code 406 PRECONDITION_FAILED: a declaration that contradicts what exists (other queue arguments). */
const AMQP_PRECONDITION_FAILED = 406;

export function isPreconditionFailed(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === AMQP_PRECONDITION_FAILED;
}
