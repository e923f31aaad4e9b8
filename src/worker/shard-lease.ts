import { setTimeout as delay } from 'node:timers/promises';

/** The settings that bound how long a worker's shards stay its own, and how long a provider call lasts. */
export interface LeaseSettings {
  replyTimeoutMs: number;
  livenessTimeoutMs: number;
  heartbeatMs: number;
  /** DB_STATEMENT_TIMEOUT_MS: the longest a decision's write can take before Postgres ends it. */
  statementTimeoutMs?: number;
}

export interface ShardLease {
  /**
   * The tenure under which a message's work may begin, once more than a heartbeat of the lease
   * is left; null when the lease ran out first.
   */
  claim(): Promise<number | null>;
  /**
   * Whether a provider call may start: still the tenure the work began under, and the shard
   * stays this worker's until the call has ended. False once the tenure changed or the lease ran
   * out while waiting for that.
   */
  mayCall(tenure: number): Promise<boolean>;
  /**
   * Whether a decision's write (an order, a cancel) may start: still the tenure the work began
   * under, and at least DB_STATEMENT_TIMEOUT_MS of the lease left. A write that committed after
   * another worker took the shard over created the order beside that worker's handling of the
   * sender's next message, a cancel say. Only a start is checked: a write held up past the lease
   * is stopped by its fence (writeDecisions' statement, recordDecision's transaction).
   */
  mayWrite(tenure: number): Promise<boolean>;
  /** Whether the settings let a call be covered whole (REPLY_TIMEOUT_MS); otherwise it only asks for a heartbeat's time. */
  coversCalls: boolean;
  /** Whether the settings let a write be covered whole (DB_STATEMENT_TIMEOUT_MS); otherwise it only asks for a heartbeat's time. */
  coversWrites: boolean;
}

/** How often a wait for the lease looks again: every message waiting has a timer of its own, so not too often. */
const LEASE_POLL_MS = 100;

/**
 * Gates on the worker's lease on its shards (ShardCoordinator.lease). A call needs
 * REPLY_TIMEOUT_MS of it, when the settings leave two heartbeats beside it (the defaults: 10 s
 * of the 15 s less two 2 s heartbeats); settings that leave no room (a long REPLY_TIMEOUT_MS)
 * get a heartbeat's time, and a call can then outlast the lease.
 *
 * A lease short only because a heartbeat is late (on a slow Postgres, say; it has a
 * connection of its own, so the pool's statements do not hold it up) is waited for, the message kept in hand: giving it back at once would cost
 * it a delivery each time, and bring it nearer the delivery limit. Only a lease that runs out,
 * or a new tenure, gives the work up.
 */
export function shardLease(
  current: () => { tenure: number; leftMs: number },
  settings: LeaseSettings,
  /**
   * When the worker's stop ends its drain (null while not stopping): no call starts that could
   * outlast it. Cut off at the exit, its reply was left 'sending', and the next worker took it
   * for a call that died mid-way: unknown, and never sent.
   */
  callsEndAt: () => number | null = () => null,
): ShardLease {
  const coversCalls = settings.replyTimeoutMs <= settings.livenessTimeoutMs - 2 * settings.heartbeatMs;
  const callNeedsMs = coversCalls ? settings.replyTimeoutMs : settings.heartbeatMs;
  const statementMs = settings.statementTimeoutMs ?? 0;
  // Like a call's: a statement timeout the lease cannot cover asks only for a heartbeat's time.
  const coversWrites = statementMs <= settings.livenessTimeoutMs - 2 * settings.heartbeatMs;
  const writeNeedsMs = coversWrites ? Math.max(statementMs, settings.heartbeatMs) : settings.heartbeatMs;
  /** Whether a call begun now ends before the stop's drain does (always, while not stopping). */
  const callEndsInTime = () => {
    const end = callsEndAt();
    return end === null || Date.now() + settings.replyTimeoutMs <= end;
  };
  /** Waits while the lease is short of `needsMs`; false once the tenure changed, the lease ran out, or `inTime` says no. */
  async function leaves(began: number, needsMs: number, inTime: () => boolean = () => true): Promise<boolean> {
    for (;;) {
      // Asked again at each look: a wait for a late heartbeat may last into the drain.
      if (!inTime()) return false;
      const { tenure, leftMs } = current();
      if (tenure !== began || leftMs <= 0) return false;
      if (leftMs > needsMs) return true;
      await delay(LEASE_POLL_MS);
    }
  }
  return {
    async claim() {
      for (;;) {
        const { tenure, leftMs } = current();
        if (leftMs > settings.heartbeatMs) return tenure;
        if (leftMs <= 0) return null;
        await delay(LEASE_POLL_MS);
      }
    },
    mayCall: (began) => leaves(began, callNeedsMs, callEndsInTime),
    mayWrite: (began) => leaves(began, writeNeedsMs),
    coversCalls,
    coversWrites,
  };
}
