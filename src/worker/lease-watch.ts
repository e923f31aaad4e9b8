/** What a release needs to know of the lease it finishes under (see WorkerConsumer.release). */
export interface LeaseEnd {
  /**
   * Resolves once the worker's heartbeats have stalled: a heartbeat sent has not gone through
   * (it hangs or failed) and two heartbeats have passed since the last one that did. The lease
   * may then run out before the messages in hand are finished.
   */
  stalled: Promise<void>;
  /** Resolves once at most a heartbeat of the lease is left: from its end, another worker may take the shard. */
  ending: Promise<void>;
}

export interface LeaseWatch extends LeaseEnd {
  /** Clears the timers; promises not yet resolved then never do. */
  stop(): void;
}

export interface LeaseWatchSources {
  /** How much of the lease is left (ShardCoordinator.lease's leftMs); -Infinity without one. */
  leftMs(): number;
  /** Whether the last heartbeat sent has not gone through yet, or failed. */
  heartbeatOutstanding(): boolean;
}

/** How often, per heartbeat, a stalled lease is looked at once it is short enough to count. */
const CHECKS_PER_HEARTBEAT = 4;

/**
 * Watches the worker's lease on its shards (ShardCoordinator.lease) for a release under way.
 * A release cancels the shard's consumer, so the worker that takes the shard once the lease has
 * run out gets the queue's next messages at once: the release must give back what it has not
 * started before then, not after (see WorkerConsumer.release). A heartbeat that goes through
 * lengthens the lease, and the watch follows it. A lease short only because a round of the
 * coordinator took long (a slow take delays the next heartbeat) is not a stall: no heartbeat
 * is outstanding then, and giving the messages back would cost each a delivery for nothing.
 */
export function watchLease(sources: LeaseWatchSources, settings: { heartbeatMs: number; livenessTimeoutMs: number }): LeaseWatch {
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  const endingMs = settings.heartbeatMs;
  const stalledMs = settings.livenessTimeoutMs - 2 * settings.heartbeatMs;
  const pollMs = settings.heartbeatMs / CHECKS_PER_HEARTBEAT;
  /** Resolves once `reached` holds, looked at again after `nextLookMs`. */
  const once = (reached: () => boolean, nextLookMs: () => number) => new Promise<void>((resolve) => {
    const look = () => {
      if (stopped) return;
      if (reached()) return resolve();
      const timer = setTimeout(() => {
        timers.delete(timer);
        look();
      }, nextLookMs());
      // A release that outlives the worker's drain must not keep the process alive.
      timer.unref();
      timers.add(timer);
    };
    look();
  });
  const left = () => sources.leftMs();
  return {
    stalled: once(
      () => left() <= endingMs || (left() <= stalledMs && sources.heartbeatOutstanding()),
      () => (left() > stalledMs ? left() - stalledMs : pollMs),
    ),
    ending: once(() => left() <= endingMs, () => left() - endingMs),
    stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
