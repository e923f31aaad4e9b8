import { describeFetchFailure, WagateError } from '../errors';

/** How often a waiting `wagate wait-ready` asks again. */
const POLL_INTERVAL_MS = 250;
/** One /readyz request that has not answered by then counts as "not yet". */
const REQUEST_TIMEOUT_MS = 2000;

/**
 * Polls a gateway's /readyz until it answers 200, so that a script (the README's demo) sends
 * its first webhook only once the gateway accepts them. Fails naming the URL and the last
 * answer or connection error.
 */
export async function waitUntilReady(baseUrl: string, timeoutMs: number): Promise<void> {
  const url = `${baseUrl.replace(/\/+$/, '')}/readyz`;
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    // No request outlasts the wait by more than a moment.
    const cutShort = deadline - Date.now() < REQUEST_TIMEOUT_MS;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(Math.max(1, Math.min(REQUEST_TIMEOUT_MS, deadline - Date.now()))) });
      if (response.status === 200) return;
      last = `it answered ${response.status} ${(await response.text()).slice(0, 200)}`;
    } catch (error) {
      // Aborted only because the wait was ending: the answer before it says more.
      const endOfWait = cutShort && (error as Error).name === 'TimeoutError' && last !== 'no answer yet';
      if (!endOfWait) last = describeFetchFailure(error);
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new WagateError('GATEWAY_UNREACHABLE', `${url} was not ready after ${timeoutMs / 1000} s (${last}); is the gateway running (scripts/dev.sh), and on this port?`);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_INTERVAL_MS, left)));
  }
}

