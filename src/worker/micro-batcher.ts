export interface MicroBatcherOptions<I, O> {
  /** Runs one statement for all the items; answers one result per item, in their order. */
  run(items: I[]): Promise<O[]>;
  /** Most items in one batch. */
  maxItems: number;
  /** Batches running at once; keep it below the pool size so the other steps still get connections. */
  maxConcurrent: number;
  /**
   * Items that must be waiting before a batch starts beside one already running. Fewer wait
   * for the running batch's answer instead: a round trip later, in one statement and one
   * commit rather than several small ones: building, sending and running a statement costs the
   * worker and Postgres per statement, and small ones are what a worker holding few messages
   * (one of several replicas) would otherwise send.
   */
  minItemsToOverlap: number;
  /**
   * An error that says nothing about the items (the database cannot be reached): every item of
   * the batch gets it at once. Any other error is isolated to the item that causes it.
   */
  failsEveryItem(error: unknown): boolean;
  /**
   * An error that may be no item's (a statement or lock timeout: Postgres slow, or a row held):
   * when both halves of a batch failing so fail so again, their items get the error at once,
   * rather than run down to single items, one timeout after another (minutes for 128 items at a
   * 5 s timeout when the cause is no item at all). A held row still costs only its own item.
   */
  splitsOnce?(error: unknown): boolean;
  /** A batch failed for a reason of its own; its items are being run apart. */
  onIsolating?(error: unknown): void;
}

export interface MicroBatcher<I, O> {
  /** The item's own result, once the batch it joined has run. */
  submit(item: I): Promise<O>;
}

interface Pending<I, O> {
  item: I;
  resolve(result: O): void;
  reject(error: unknown): void;
}

/**
 * Group commit for the worker's per-message statements: items submitted while earlier batches
 * are running (or in the same event-loop turn) are gathered and run as one statement, sharing
 * the round trip and the commit. Each caller still awaits its own item, so a sender's chain
 * keeps its order; a batch never holds two items of one chain, since a chain submits its next
 * item only after its previous one has answered.
 *
 * A batch that fails is bisected down to the item that fails it, which alone gets the error:
 * one poison message costs one message, not every sender that shared its batch.
 */
export function createMicroBatcher<I, O>(options: MicroBatcherOptions<I, O>): MicroBatcher<I, O> {
  const pending: Pending<I, O>[] = [];
  let active = 0;
  let scheduled = false;

  /** A first batch starts at once; another beside it only for minItemsToOverlap waiting items. */
  function mayStartBatch(): boolean {
    if (pending.length === 0) return false;
    return active === 0 || (active < options.maxConcurrent && pending.length >= options.minItemsToOverlap);
  }

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      while (mayStartBatch()) {
        const batch = pending.splice(0, options.maxItems);
        active += 1;
        void runIsolated(batch).finally(() => {
          active -= 1;
          if (pending.length > 0) schedule();
        });
      }
    });
  }

  /** Runs the batch; null when every item has its answer, else the error left for isolation. */
  async function attempt(batch: Pending<I, O>[]): Promise<unknown> {
    let results: O[];
    try {
      results = await options.run(batch.map((entry) => entry.item));
    } catch (error) {
      if (batch.length > 1 && !options.failsEveryItem(error)) return error;
      batch.forEach((entry) => entry.reject(error));
      return null;
    }
    batch.forEach((entry, index) => entry.resolve(results[index]!));
    return null;
  }

  async function runIsolated(batch: Pending<I, O>[]): Promise<void> {
    const failure = await attempt(batch);
    if (failure === null) return;
    options.onIsolating?.(failure);
    await runHalves(batch, failure);
  }

  /**
   * Runs a failed batch's halves. After an error that splits once, both halves failing the same
   * way says the cause is no item of theirs: their items get the error at once. Otherwise the
   * half that failed is bisected on, down to the item that fails it.
   */
  async function runHalves(batch: Pending<I, O>[], failure: unknown): Promise<void> {
    const middle = Math.ceil(batch.length / 2);
    const halves = [batch.slice(0, middle), batch.slice(middle)];
    if (!(options.splitsOnce?.(failure) ?? false)) {
      for (const half of halves) await runIsolated(half);
      return;
    }
    const failures: unknown[] = [];
    for (const half of halves) failures.push(await attempt(half));
    if (failures.every((error) => error !== null && options.splitsOnce!(error))) {
      halves.forEach((half, index) => half.forEach((entry) => entry.reject(failures[index])));
      return;
    }
    for (const [index, half] of halves.entries()) {
      if (failures[index] === null) continue;
      options.onIsolating?.(failures[index]);
      await runHalves(half, failures[index]);
    }
  }

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        pending.push({ item, resolve, reject });
        schedule();
      });
    },
  };
}
