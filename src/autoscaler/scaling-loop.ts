import type { Logger } from '../telemetry/logger';
import type { AutoscalerMetrics, AutoscalerReason } from '../telemetry/autoscaler-metrics';
import { decide, type ScaleDownMemory, type ScalingPolicy } from './decide';
import { clockTime, decisionAtCurrentRevision, judgeOwnership, type LastDecision, type Ownership } from './ownership';
import type { WorkerDeployment } from './worker-deployment';

type Snapshot = Awaited<ReturnType<WorkerDeployment['read']>>;
type Recorder = (replicas: number, reason: string, holdUntilMs?: number) => LastDecision;

export interface ScalingLoopDeps {
  countBacklog(): Promise<number>;
  worker: WorkerDeployment;
  policy: ScalingPolicy;
  manualHoldMs: number;
  metrics: AutoscalerMetrics;
  log: Logger;
  now?: () => number;
}

/** A conflict means someone wrote in between: read again, a few times, then wait for the next tick. */
const MAX_CONFLICT_RETRIES = 3;

/** One tick reads the backlog and the Deployment, and scales, holds or does nothing. Leader only. */
export function createScalingLoop(deps: ScalingLoopDeps) {
  const { worker, metrics, log } = deps;
  const now = deps.now ?? Date.now;
  // Kept in memory only: a new leader starts its scale-down window afresh, which errs on the side of capacity.
  let memory: ScaleDownMemory | null = null;

  const count = (reason: AutoscalerReason) => {
    metrics.decisions.inc({ reason });
    return reason;
  };

  /** Paused, holding or a manual scale just seen: records what a new leader must know, then stops the tick. */
  const yieldToPeople = async (ownership: Ownership, snapshot: Snapshot, record: Recorder): Promise<AutoscalerReason | null> => {
    if (ownership.kind === 'paused') {
      // What a person sets while paused is the baseline afterwards, not a manual scale to hold for.
      if (snapshot.lastDecision?.replicas !== snapshot.replicas) await worker.recordDecision(record(snapshot.replicas, 'paused'));
      return 'paused';
    }
    if (ownership.kind === 'holding') return 'manual_hold';
    if (ownership.kind !== 'manual_scale') return null;
    await worker.recordDecision(record(snapshot.replicas, 'manual_scale', ownership.holdUntilMs));
    const message = `manual scale to ${snapshot.replicas} detected; holding until ${clockTime(ownership.holdUntilMs)}`;
    await worker.recordEvent({ reason: 'ManualScaleDetected', message, type: 'Normal', uid: snapshot.uid });
    metrics.manualHolds.inc();
    log.info({ replicas: snapshot.replicas, holdUntil: new Date(ownership.holdUntilMs).toISOString() }, message);
    return 'manual_scale';
  };

  const attempt = async (backlog: number): Promise<AutoscalerReason> => {
    const snapshot = await worker.read();
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
    const current = ownership.kind === 'own' || ownership.kind === 'holding' ? decisionAtCurrentRevision(snapshot) : null;
    if (current) await worker.recordDecision(current);
    const yielded = await yieldToPeople(ownership, snapshot, record);
    if (yielded) {
      memory = null;
      return yielded;
    }
    const decision = decide({ backlog, currentReplicas: snapshot.replicas, nowMs, memory }, deps.policy);
    metrics.desired.set(decision.desired);
    if (decision.desired === snapshot.replicas) {
      memory = decision.memory;
      if (ownership.kind === 'adopt') await worker.recordDecision(record(snapshot.replicas, `adopted_${ownership.why}`));
      return decision.reason;
    }
    if ((await worker.scale(record(decision.desired, decision.reason), snapshot.resourceVersion)) === 'conflict') return 'conflict';
    memory = decision.memory;
    metrics.current.set(decision.desired);
    const message = `scaled from ${snapshot.replicas} to ${decision.desired} replicas (${decision.reason}): backlog ${backlog}`;
    await worker.recordEvent({ reason: 'Scaled', message, type: 'Normal', uid: snapshot.uid });
    log.info({ from: snapshot.replicas, to: decision.desired, backlog, reason: decision.reason }, 'scaled the workers');
    return decision.reason;
  };

  return {
    async tick(): Promise<AutoscalerReason> {
      try {
        const backlog = await deps.countBacklog();
        metrics.backlog.set(backlog);
        for (let tries = 0; tries < MAX_CONFLICT_RETRIES; tries += 1) {
          const reason = await attempt(backlog);
          count(reason);
          if (reason !== 'conflict') return reason;
          log.info('the worker Deployment changed while deciding; reading it again');
        }
        return 'conflict';
      } catch (error) {
        log.warn({ err: (error as Error).message }, 'autoscaler tick failed; trying again at the next one');
        return count('error');
      }
    },
    /** A new leader forgets the window: what it saw as standby is not its own history. */
    forget(): void {
      memory = null;
    },
  };
}
