import { untilAborted } from '../settle-within';
import type { Logger } from '../telemetry/logger';
import type { AutoscalerMetrics, AutoscalerReason } from '../telemetry/autoscaler-metrics';
import { decide, type ScaleDownMemory, type ScalingPolicy } from './decide';
import { clockTime, decisionAtCurrentRevision, judgeOwnership, PAUSED_ANNOTATION, PAUSED_REASON, RESUMED_REASON, type LastDecision, type Ownership } from './ownership';
import { statusOf } from './api-status';
import type { WorkerDeployment } from './worker-deployment';

type Snapshot = Awaited<ReturnType<WorkerDeployment['read']>>;
type Recorder = (replicas: number, reason: string, holdUntilMs?: number) => LastDecision;

export interface ScalingLoopDeps {
  countBacklog(): Promise<number>;
  /**
   * The shard count stored in Postgres, the one `wagate reshard` changes; null before any
   * process stored one, and policy.shards (WORK_SHARDS) is used. Read at every tick, so that
   * after a reshard the clamp follows without a restart of the autoscaler.
   */
  countShards?(): Promise<number | null>;
  worker: WorkerDeployment;
  policy: ScalingPolicy;
  manualHoldMs: number;
  metrics: AutoscalerMetrics;
  log: Logger;
  /** The wall clock, for what is written on the Deployment (decisions, holds) and read back by the next leader. */
  now?: () => number;
  /**
   * A clock that only goes forward, for the scale-down window kept in memory: a wall clock
   * stepped forward (NTP, a resumed VM) would age the window's readings and scale down early.
   */
  monotonicNow?: () => number;
}

/** What an operator can do about the API server's answers that repeat at every tick until someone acts. */
const KUBE_HINTS: Record<number, string> = {
  401: 'the API server does not accept the ServiceAccount token: check that the pod mounts one',
  403: 'the Role does not allow this: it must grant get and patch on the worker Deployment (AUTOSCALER_DEPLOYMENT) and create on events',
  404: 'no worker Deployment of that name in that namespace: check AUTOSCALER_DEPLOYMENT and AUTOSCALER_NAMESPACE',
  422: 'an admission policy refused the write: the chart\'s write guard lets the autoscaler change only the worker\'s replicas, from 1 to its wagate.io/autoscaler-max-replicas annotation (which must hold a whole number), and its own decision annotation',
};

/** A conflict means someone wrote in between: read again, a few times, then wait for the next tick. */
const MAX_CONFLICT_RETRIES = 3;

/** One tick reads the backlog and the Deployment, and scales, holds or does nothing. Leader only. */
export function createScalingLoop(deps: ScalingLoopDeps) {
  const { worker, metrics, log } = deps;
  const now = deps.now ?? Date.now;
  const monotonicNow = deps.monotonicNow ?? (() => performance.now());
  // Kept in memory only: a new leader starts its scale-down window afresh, which errs on the side of capacity.
  let memory: ScaleDownMemory | null = null;
  /** The hold whose Event could not be recorded, as told in the log (its atMs). */
  let holdWarned: number | null = null;

  const count = (reason: AutoscalerReason) => {
    metrics.decisions.inc({ reason });
    return reason;
  };

  /**
   * An Event says what the autoscaler did; the decision it reports is already written. A failed
   * Event is logged (with `consequence`, unless null) and the tick goes on: failing it would
   * count a scale that happened as an error, and a manual scale, once its hold is recorded,
   * would never be announced. Null when the Event could not be recorded.
   */
  const announce = async (
    event: Parameters<WorkerDeployment['recordEvent']>[0],
    signal: AbortSignal | undefined,
    consequence: string | null = 'the decision stands',
  ): Promise<'created' | 'exists' | null> => {
    try {
      return await worker.recordEvent(event, signal);
    } catch (error) {
      if (consequence !== null) log.warn({ err: (error as Error).message, event: event.reason }, `could not record a Kubernetes Event (the Role grants create on events); ${consequence}`);
      return null;
    }
  };

  /**
   * The ManualScaleDetected Event of a recorded hold, named after the hold (its atMs), so that
   * it is created once however often it is tried. True once it exists. A hold is recorded as
   * owing it first: one whose write went through while its answer was lost (the tick's
   * deadline, a leadership lost) is announced by a later tick, rather than never.
   */
  const announceHold = async (hold: LastDecision, snapshot: Snapshot, signal?: AbortSignal): Promise<boolean> => {
    const message = `manual scale to ${hold.replicas} detected; holding until ${clockTime(hold.holdUntilMs ?? hold.atMs)}`;
    // Warned of once a hold: a Role without create on events would otherwise say so at every tick of it.
    const consequence = holdWarned === hold.atMs ? null : 'the hold stands, and later ticks try again';
    const outcome = await announce({ reason: 'ManualScaleDetected', message, type: 'Normal', uid: snapshot.uid, key: `manual-scale-${hold.atMs}` }, signal, consequence);
    if (outcome === null) holdWarned = hold.atMs;
    return outcome !== null;
  };

  /** Writes a decision that changes no count against the snapshot read; false when the Deployment changed since. */
  const recorded = async (decision: LastDecision, snapshot: Snapshot, signal?: AbortSignal): Promise<boolean> =>
    (await worker.recordDecision(decision, snapshot.resourceVersion, signal)) === 'recorded';

  /** Paused, holding or a manual scale just seen: records what a new leader must know, then stops the tick. */
  const yieldToPeople = async (ownership: Ownership, snapshot: Snapshot, record: Recorder, signal?: AbortSignal): Promise<AutoscalerReason | null> => {
    if (ownership.kind === 'paused') {
      // What a person sets while paused is the baseline afterwards, not a manual scale to hold for;
      // and a hold from before the pause ends with it, so that removing the annotation resumes at once.
      // Recorded as paused at the first paused tick, even at the same count: a count set after it
      // and before the next tick is then still adopted on resuming (judgeOwnership).
      const last = snapshot.lastDecision;
      const stale = last?.replicas !== snapshot.replicas || last?.holdUntilMs !== undefined || last?.reason !== PAUSED_REASON;
      if (stale && !(await recorded(record(snapshot.replicas, PAUSED_REASON), snapshot, signal))) return 'conflict';
      return 'paused';
    }
    if (ownership.kind === 'holding') return 'manual_hold';
    if (ownership.kind !== 'manual_scale') return null;
    const hold = record(snapshot.replicas, 'manual_scale', ownership.holdUntilMs);
    if (!(await recorded({ ...hold, announced: false }, snapshot, signal))) return 'conflict';
    metrics.manualHolds.inc();
    log.info({ replicas: snapshot.replicas, holdUntil: new Date(ownership.holdUntilMs).toISOString() }, `manual scale to ${snapshot.replicas} detected; holding until ${clockTime(ownership.holdUntilMs)}`);
    // Marked announced by the next tick (this one's snapshot is stale now): its Event then exists already.
    await announceHold(hold, snapshot, signal);
    return 'manual_scale';
  };

  /**
   * A count that changed with a new revision is taken as a rollout's (a manifest that sets
   * `replicas`), not held for as a person's. A person who scaled during a rollout (a restart
   * after a secret rotation, say) would otherwise see their count scaled away without a word.
   * Said before the decision is written, under a name of the revision and the count: a write
   * whose answer was lost leaves the count owned, and no later tick would say it; one that
   * conflicts is tried again, and finds the Event there.
   */
  const announceAdoption = async (ownership: Ownership, snapshot: Snapshot, signal?: AbortSignal): Promise<void> => {
    if (ownership.kind !== 'adopt' || ownership.why !== 'rollout') return;
    const message = `took ${snapshot.replicas} replicas, set together with rollout revision ${snapshot.revision ?? '?'}, as its own count, not as a manual scale to hold for; `
      + `to keep a count set by hand, scale again or annotate ${PAUSED_ANNOTATION}=true`;
    const key = `rollout-count-${String(snapshot.revision ?? 'none').toLowerCase().replace(/[^a-z0-9-]/g, '-')}-${snapshot.replicas}`;
    if ((await announce({ reason: 'RolloutCountAdopted', message, type: 'Normal', uid: snapshot.uid, key }, signal, message)) === 'created') {
      log.info({ replicas: snapshot.replicas, revision: snapshot.revision }, message);
    }
  };

  const attempt = async (backlog: number, policy: ScalingPolicy, signal?: AbortSignal): Promise<AutoscalerReason> => {
    const snapshot = await worker.read(signal);
    const nowMs = now();
    const ownership = judgeOwnership(snapshot, nowMs, deps.manualHoldMs);
    metrics.current.set(snapshot.replicas);
    metrics.paused.set(ownership.kind === 'paused' ? 1 : 0);
    metrics.holdingUntil.set(ownership.kind === 'holding' || ownership.kind === 'manual_scale' ? ownership.holdUntilMs / 1000 : 0);
    const record: Recorder = (replicas, reason, holdUntilMs) => ({
      replicas,
      revision: snapshot.revision,
      reason,
      atMs: nowMs,
      ...(holdUntilMs === undefined ? {} : { holdUntilMs }),
    });
    // A rollout changed the revision but not the count: the decision is written again at the new
    // revision, by the scale's own patch when there is one (a write of its own first would change
    // the resourceVersion and make the scale conflict with it).
    // The first tick after a pause ended at the count the pause left: recorded, so that a count
    // set from now on is a person's again (one set since the last paused tick is adopted instead).
    const resumed = ownership.kind === 'own' && snapshot.lastDecision?.reason === PAUSED_REASON;
    let current = resumed
      ? record(snapshot.replicas, RESUMED_REASON)
      : ownership.kind === 'own' || ownership.kind === 'holding' ? decisionAtCurrentRevision(snapshot) : null;
    // A hold that may not have been announced yet is, and then recorded so.
    const owed = snapshot.lastDecision?.announced === false ? snapshot.lastDecision : null;
    if (owed && ownership.kind === 'holding' && (await announceHold(owed, snapshot, signal))) current = { ...(current ?? owed), announced: true };
    const yielded = await yieldToPeople(ownership, snapshot, record, signal);
    if (yielded) {
      if (yielded === 'conflict' || (current && !(await recorded(current, snapshot, signal)))) return 'conflict';
      memory = null;
      return yielded;
    }
    // An adopted count is a new baseline: what the window remembered was asked of another one.
    if (ownership.kind === 'adopt') memory = null;
    await announceAdoption(ownership, snapshot, signal);
    // Within what the write guard allows too: above it, every scale would be refused (422).
    const bounded = snapshot.maxReplicas === undefined ? policy : { ...policy, maxReplicas: Math.min(policy.maxReplicas, snapshot.maxReplicas) };
    const decision = decide({ backlog, currentReplicas: snapshot.replicas, nowMs: monotonicNow(), memory }, bounded);
    metrics.desired.set(decision.desired);
    if (decision.desired === snapshot.replicas) {
      const baseline = ownership.kind === 'adopt' ? record(snapshot.replicas, `adopted_${ownership.why}`) : current;
      if (baseline && !(await recorded(baseline, snapshot, signal))) return 'conflict';
      memory = decision.memory;
      return decision.reason;
    }
    if ((await worker.scale(record(decision.desired, decision.reason), snapshot.resourceVersion, signal)) === 'conflict') return 'conflict';
    memory = decision.memory;
    metrics.current.set(decision.desired);
    const message = `scaled from ${snapshot.replicas} to ${decision.desired} replicas (${decision.reason}): backlog ${backlog}`;
    log.info({ from: snapshot.replicas, to: decision.desired, backlog, reason: decision.reason }, 'scaled the workers');
    await announce({ reason: 'Scaled', message, type: 'Normal', uid: snapshot.uid }, signal);
    return decision.reason;
  };

  return {
    /** One tick; `signal` aborts its Kubernetes calls (the leadership it started under has ended, or its deadline passed). */
    async tick(signal?: AbortSignal): Promise<AutoscalerReason> {
      try {
        // postgres.js takes no signal: a query on a connection the network dropped waits until TCP
        // gives up (minutes), while the elector keeps renewing the Lease, so no standby could act.
        const backlog = await untilAborted(deps.countBacklog(), signal);
        metrics.backlog.set(backlog);
        const policy = { ...deps.policy, shards: (await untilAborted(deps.countShards?.() ?? Promise.resolve(null), signal)) ?? deps.policy.shards };
        for (let tries = 0; tries < MAX_CONFLICT_RETRIES; tries += 1) {
          signal?.throwIfAborted();
          const reason = await attempt(backlog, policy, signal);
          count(reason);
          if (reason !== 'conflict') return reason;
          log.info('the worker Deployment changed while deciding; reading it again');
        }
        // A tick that decided nothing is a gap in the window's readings: seen afresh, as after any failure.
        memory = null;
        return 'conflict';
      } catch (error) {
        // The window starts afresh after a failed tick (see remember in decide.ts): told here, not
        // guessed from the gap between readings, which one quick failure may not widen enough.
        memory = null;
        const status = statusOf(error);
        log.warn({ err: (error as Error).message, status, hint: KUBE_HINTS[status] }, 'autoscaler tick failed; trying again at the next one');
        return count('error');
      }
    },
    /** A new leader forgets the window: what it saw as standby is not its own history. */
    forget(): void {
      memory = null;
    },
  };
}
