/**
 * The scaling decision: a pure function of the backlog, the current replica count, the
 * policy and what it remembered from the previous tick. Everything that talks to Kubernetes
 * or Postgres lives elsewhere, so every rule here is proven by a table of cases.
 */

export interface ScalingPolicy {
  /** Backlog messages one worker replica is expected to handle. */
  targetPerReplica: number;
  minReplicas: number;
  maxReplicas: number;
  /** Replicas beyond the shard count would consume nothing, so this caps maxReplicas. */
  shards: number;
  /** How long the backlog must ask for fewer replicas before they are removed. */
  scaleDownStabilizationMs: number;
  /**
   * The longest gap between two ticks that both succeed: the loop's interval, which starts when a
   * tick ends, plus the longest a tick may take (its renew deadline). A longer gap means ticks failed.
   */
  tickGapMs: number;
  /** Relative difference between the backlog and current capacity that causes no change. */
  tolerance: number;
}

/**
 * The part of the previous decisions that the next one needs: what each tick of the last
 * stabilisation window asked for. Scale-down goes to the highest of those, as the
 * HorizontalPodAutoscaler's stabilisation window does, so a backlog that fell in steps is
 * followed a tick after each step leaves the window, not one whole window per step.
 */
export interface ScaleDownMemory {
  /** The first tick this memory saw, in ms of a clock that only goes forward: nothing is removed before a whole window has been seen. */
  sinceMs: number;
  /** Each tick within the window, oldest first: when, and the count it asked for (the current one inside the tolerance). */
  recent: { atMs: number; wanted: number }[];
}

export type DecisionReason = 'scale_up' | 'scale_down' | 'steady' | 'within_tolerance' | 'stabilising' | 'out_of_bounds';

export interface DecideInput {
  backlog: number;
  currentReplicas: number;
  /** Now, on the clock the memory is kept in. */
  nowMs: number;
  memory: ScaleDownMemory | null;
}

export interface Decision {
  desired: number;
  reason: DecisionReason;
  /** What the backlog asks for, after the clamp and before the step limits. */
  wanted: number;
  memory: ScaleDownMemory | null;
}

/** Kubernetes' HorizontalPodAutoscaler uses the same default: 10 % either way does nothing. */
export const DEFAULT_TOLERANCE = 0.1;

export function replicaBounds(policy: ScalingPolicy): { lower: number; upper: number } {
  const upper = Math.max(1, Math.min(policy.maxReplicas, policy.shards));
  return { lower: Math.min(Math.max(1, policy.minReplicas), upper), upper };
}

export function wantedReplicas(backlog: number, policy: ScalingPolicy): number {
  const { lower, upper } = replicaBounds(policy);
  const raw = Math.ceil(Math.max(0, backlog) / policy.targetPerReplica);
  return Math.min(upper, Math.max(lower, raw));
}

export function decide(input: DecideInput, policy: ScalingPolicy): Decision {
  const { backlog, currentReplicas: current, nowMs } = input;
  const wanted = wantedReplicas(backlog, policy);
  const { lower, upper } = replicaBounds(policy);
  if (current < lower || current > upper) {
    return { desired: Math.min(upper, Math.max(lower, current)), reason: 'out_of_bounds', wanted, memory: null };
  }
  const tolerated = wanted !== current && withinTolerance(backlog, current, policy);
  const memory = remember(input.memory, tolerated ? current : wanted, nowMs, policy);
  if (wanted === current) return { desired: current, reason: 'steady', wanted, memory };
  if (tolerated) return { desired: current, reason: 'within_tolerance', wanted, memory };
  if (wanted > current) {
    // At most doubling per step: a burst that fades within seconds does not start a fleet.
    return { desired: Math.min(wanted, Math.max(1, current * 2)), reason: 'scale_up', wanted, memory };
  }
  // The highest count asked for during the window, so a dip inside it cannot undershoot; and
  // none before a whole window was seen (a new leader errs on the side of capacity).
  const highest = Math.max(...memory.recent.map((tick) => tick.wanted));
  if (nowMs - memory.sinceMs < policy.scaleDownStabilizationMs || highest >= current) {
    return { desired: current, reason: 'stabilising', wanted, memory };
  }
  return { desired: highest, reason: 'scale_down', wanted, memory };
}

function withinTolerance(backlog: number, current: number, policy: ScalingPolicy): boolean {
  if (current === 0) return false;
  const ratio = backlog / (current * policy.targetPerReplica);
  return Math.abs(ratio - 1) <= policy.tolerance;
}

function remember(memory: ScaleDownMemory | null, wanted: number, nowMs: number, policy: ScalingPolicy): ScaleDownMemory {
  const windowMs = policy.scaleDownStabilizationMs;
  const recent = (memory?.recent ?? []).filter((tick) => tick.atMs >= nowMs - windowMs);
  // Ticks failed (an outage, a backlog count past its statement timeout): the window is seen
  // afresh, or the readings after the gap alone would decide a scale-down. A gap just shorter
  // than the window kept its first reading until that left too, and then scaled 10 replicas to
  // 1 on twenty seconds of readings. Any failed tick is a gap: erring on the side of capacity. A window
  // shorter than the gap between ticks holds no earlier reading even when every tick succeeds,
  // so the gap, not an empty window, tells an outage; judged by the window alone, each tick
  // would start it anew and nothing would ever be removed.
  const lastAtMs = memory?.recent.at(-1)?.atMs;
  const continuous = lastAtMs !== undefined && nowMs - lastAtMs <= policy.tickGapMs;
  const sinceMs = memory && continuous ? memory.sinceMs : nowMs;
  return { sinceMs, recent: [...recent, { atMs: nowMs, wanted }] };
}
