/** The settings that bound how long a worker's shards stay its own, and how long a provider call lasts. */
export interface LeaseSettings {
  replyTimeoutMs: number;
  livenessTimeoutMs: number;
  heartbeatMs: number;
}

export interface ShardLease {
  /** A message may be claimed: no other worker can have taken the shard since the claim's check of its owner. */
  mayClaim(): boolean;
  /** A provider call may start: the shard stays this worker's until the call has ended. */
  mayCall(): boolean;
  /** Whether the settings let mayCall cover a whole call (REPLY_TIMEOUT_MS); otherwise it only asks for a heartbeat's time. */
  coversCalls: boolean;
}

/**
 * Gates on the time left before this worker's shards could pass to another (leaseLeftMs). A
 * call needs REPLY_TIMEOUT_MS of it, when the settings leave two heartbeats beside it
 * (the defaults: 10 s of the 15 s less two 2 s heartbeats), so that one late heartbeat does not
 * stop the sends; settings that leave no room (a long REPLY_TIMEOUT_MS) get a heartbeat's time,
 * and a call can then outlast the lease.
 */
export function shardLease(leaseLeftMs: () => number, settings: LeaseSettings): ShardLease {
  const coversCalls = settings.replyTimeoutMs <= settings.livenessTimeoutMs - 2 * settings.heartbeatMs;
  const callNeedsMs = coversCalls ? settings.replyTimeoutMs : settings.heartbeatMs;
  return {
    mayClaim: () => leaseLeftMs() > 0,
    mayCall: () => leaseLeftMs() > callNeedsMs,
    coversCalls,
  };
}
