/**
 * Refreshes a gauge from a count read in Postgres. A failed read keeps the last count standing
 * for keptMs: a brief stumble must not reset an alert's `for` or resolve a firing alert and
 * fire it again as a new one. Past keptMs the gauge is forgotten (NaN or no series, which
 * max() skips), so a worker cut off from Postgres does not keep an alert firing for good.
 */
export function countKeptThroughFailures<T>(
  read: () => Promise<T>,
  show: (count: T) => void,
  forget: () => void,
  keptMs: number,
  now: () => number = Date.now,
): () => Promise<void> {
  let readAt = now();
  return () =>
    read().then(
      (count) => {
        readAt = now();
        show(count);
      },
      () => {
        if (now() - readAt > keptMs) forget();
      },
    );
}
