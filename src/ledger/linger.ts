/**
 * Gathers the items of calls made within `lingerMs` of the first into one call of `flush`,
 * and gives each caller the results of its own items, in order (or the flush's error). With
 * 0 every call flushes alone. `flush` returns one result per item.
 */
export function createLinger<Item, Result>(lingerMs: number, flush: (items: Item[]) => Promise<Result[]>): (items: Item[]) => Promise<Result[]> {
  if (lingerMs === 0) return flush;
  type Caller = { count: number; resolve(results: Result[]): void; reject(error: unknown): void };
  let gathered: { items: Item[]; callers: Caller[] } | null = null;

  function flushGathered(): void {
    const { items, callers } = gathered!;
    gathered = null;
    flush(items).then(
      (results) => {
        let offset = 0;
        for (const caller of callers) {
          caller.resolve(results.slice(offset, offset + caller.count));
          offset += caller.count;
        }
      },
      (error: unknown) => callers.forEach((caller) => caller.reject(error)),
    );
  }

  return (items) =>
    new Promise<Result[]>((resolve, reject) => {
      if (gathered === null) {
        gathered = { items: [], callers: [] };
        setTimeout(flushGathered, lingerMs);
      }
      gathered.items.push(...items);
      gathered.callers.push({ count: items.length, resolve, reject });
    });
}
