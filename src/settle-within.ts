/**
 * Settles with work, or with fallback once ms have passed, whichever comes first. The timer is
 * cleared as soon as work settles: a pending timer would keep its promise chain alive for the
 * whole timeout, and at thousands of calls a second that is tens of megabytes of heap.
 *
 * The timer is unref'd, so it never holds a process open by itself; the work it races is what
 * keeps a process alive (a socket, a server, a broker channel).
 */
export function settleWithin<T, F>(work: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), Math.max(0, ms)).unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Like settleWithin, but fails with the error that onTimeout makes. */
export function failAfter<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  const timedOut = Symbol('timed out');
  return settleWithin(work, ms, timedOut).then((value) => {
    if (value === timedOut) throw onTimeout();
    return value as T;
  });
}

/**
 * Several waits sharing one time budget, as a stop's closes do: each resolves true if its work
 * settled before the deadline, false if the deadline came first (the work goes on unwatched).
 */
export function finishedWithin(ms: number): (work: Promise<unknown>) => Promise<boolean> {
  const deadline = Date.now() + ms;
  return (work) => settleWithin(work.then(() => true), Math.max(deadline - Date.now(), 0), false);
}

/**
 * Settles with work, or fails with the signal's reason once it aborts, whichever comes first;
 * without a signal, it is the work. For a call that takes no signal of its own (a postgres.js
 * query): the caller stops waiting, and the work goes on unwatched until its own end.
 */
export function untilAborted<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    // Nobody waits for it any more; its failure must not surface as an unhandled rejection.
    work.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort!));
}
