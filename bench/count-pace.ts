/** Close to the end, count this often: the drain's end and its CPU window are read from the count. */
const NEAREST_MS = 50;
/** Far from the end, count no more rarely than this. */
const FARTHEST_MS = 1000;
/** Wait this share of the time the drain still looks to need. */
const SHARE_OF_REMAINING = 0.25;

/**
 * When to count a drain's progress next. A count of finished messages scans the whole ledger
 * table, about 10 ms of Postgres at 8,000 messages, and Postgres is what a draining worker runs
 * short of: counted every 50 ms, the bench itself took 0.13 of Postgres's cores from the worker
 * it measured. So count rarely while the end is far, and every 50 ms as it nears.
 */
export function nextCountDelayMs(done: number, total: number, countingForMs: number): number {
  if (done <= 0 || countingForMs <= 0) return NEAREST_MS;
  const remainingMs = ((total - done) * countingForMs) / done;
  return Math.min(FARTHEST_MS, Math.max(NEAREST_MS, remainingMs * SHARE_OF_REMAINING));
}
