/** The settings that bound how long a worker's shards stay its own, and how long a provider call lasts. */
export interface LeaseSettings {
  replyTimeoutMs: number;
  livenessTimeoutMs: number;
  heartbeatMs: number;
}

export interface ShardLease {
  /**
   * The tenure under which a message's work may begin, or null when nothing may be claimed now:
   * less than a heartbeat of the lease is left.
   */
  claim(): number | null;
  /** A provider call may start: still the tenure the work began under, and the shard stays this worker's until the call has ended. */
  mayCall(tenure: number): boolean;
  /** Whether the settings let mayCall cover a whole call (REPLY_TIMEOUT_MS); otherwise it only asks for a heartbeat's time. */
  coversCalls: boolean;
}

/**
 * Gates on the worker's lease on its shards (ShardCoordinator.lease). A call needs
 * REPLY_TIMEOUT_MS of it, when the settings leave two heartbeats beside it (the defaults: 10 s
 * of the 15 s less two 2 s heartbeats), so that one late heartbeat does not stop the sends;
 * settings that leave no room (a long REPLY_TIMEOUT_MS) get a heartbeat's time, and a call can
 * then outlast the lease.
 */
export function shardLease(current: () => { tenure: number; leftMs: number }, settings: LeaseSettings): ShardLease {
  const coversCalls = settings.replyTimeoutMs <= settings.livenessTimeoutMs - 2 * settings.heartbeatMs;
  const callNeedsMs = coversCalls ? settings.replyTimeoutMs : settings.heartbeatMs;
  return {
    claim() {
      const { tenure, leftMs } = current();
      return leftMs > settings.heartbeatMs ? tenure : null;
    },
    mayCall(began) {
      const { tenure, leftMs } = current();
      return tenure === began && leftMs > callNeedsMs;
    },
    coversCalls,
  };
}
