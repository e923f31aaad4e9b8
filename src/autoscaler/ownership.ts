import { z } from 'zod';

/**
 * Whether the autoscaler may act on the worker Deployment, or must yield to a person. A pure
 * function of what the Deployment says, so a new leader reaches the same verdict as the old.
 */

export const PAUSED_ANNOTATION = 'wagate.io/autoscaler-paused';
export const LAST_DECISION_ANNOTATION = 'wagate.io/autoscaler-last-decision';
/** Set by the deployment controller; it changes with every rollout of a new pod template. */
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';

/** The reason of the decision a paused tick records: the count it found, as its baseline. */
export const PAUSED_REASON = 'paused';
/** The reason of the decision the first tick after a pause records, at the count the pause left. */
export const RESUMED_REASON = 'resumed';

/** What the autoscaler last set or accepted, stored on the Deployment as JSON. */
export interface LastDecision {
  replicas: number;
  /** The Deployment's revision at that moment: a later rollout that also set replicas is not a person. */
  revision?: string;
  reason: string;
  atMs: number;
  /** Until when it yields to a manual scale, in epoch ms. */
  holdUntilMs?: number;
  /**
   * False on a hold whose ManualScaleDetected Event may not exist yet: written before the Event,
   * so that a hold recorded while its answer was lost is still announced, by a later tick.
   */
  announced?: boolean;
}

export interface WorkerSnapshot {
  replicas: number;
  revision?: string;
  paused: boolean;
  lastDecision: LastDecision | null;
  /** The most the chart's write guard lets the autoscaler set (MAX_REPLICAS_ANNOTATION); absent: no such bound. */
  maxReplicas?: number;
}

export type Ownership =
  | { kind: 'paused' }
  /** Take the current count as its own (first run, a rollout set it, or a person while it was paused) and act. */
  | { kind: 'adopt'; why: 'first_run' | 'rollout' | 'pause' }
  /** Someone scaled by hand just now: record it and hold until the time given. */
  | { kind: 'manual_scale'; holdUntilMs: number }
  | { kind: 'holding'; holdUntilMs: number }
  | { kind: 'own' };

export function judgeOwnership(worker: WorkerSnapshot, nowMs: number, manualHoldMs: number): Ownership {
  if (worker.paused) return { kind: 'paused' };
  const last = worker.lastDecision;
  if (!last) return { kind: 'adopt', why: 'first_run' };
  if (worker.replicas !== last.replicas) {
    if (worker.revision !== undefined && worker.revision !== last.revision) return { kind: 'adopt', why: 'rollout' };
    // Last seen paused: the count was set during the pause, after its last tick (a scale and the
    // annotation's removal within one interval), and is the baseline, as one seen paused is. The
    // first tick after the pause records RESUMED_REASON, so a later scale is a person's again.
    if (last.reason === PAUSED_REASON) return { kind: 'adopt', why: 'pause' };
    return { kind: 'manual_scale', holdUntilMs: nowMs + manualHoldMs };
  }
  if (last.holdUntilMs !== undefined && last.holdUntilMs > nowMs) return { kind: 'holding', holdUntilMs: last.holdUntilMs };
  return { kind: 'own' };
}

/**
 * The last decision again, at the Deployment's current revision, when a rollout has changed the
 * revision but not the count. Without it the decision keeps the old revision, and the next
 * `kubectl scale` differs in both count and revision: it would be taken for a rollout and
 * adopted instead of held for. Null when the stored revision is current.
 */
export function decisionAtCurrentRevision(worker: WorkerSnapshot): LastDecision | null {
  const last = worker.lastDecision;
  if (!last || worker.revision === undefined || worker.revision === last.revision) return null;
  if (worker.replicas !== last.replicas) return null;
  return { ...last, revision: worker.revision };
}

const lastDecisionSchema = z.object({
  replicas: z.number().int().min(0),
  revision: z.string().optional(),
  reason: z.string(),
  atMs: z.number(),
  holdUntilMs: z.number().optional(),
  announced: z.boolean().optional(),
});

/** The annotation's value; anything unreadable counts as no decision, so it is adopted afresh. */
export function parseLastDecision(value: string | undefined): LastDecision | null {
  if (!value) return null;
  try {
    const parsed = lastDecisionSchema.safeParse(JSON.parse(value));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * The chart's worker.autoscaling.maxReplicas, on the worker Deployment: its write guard refuses
 * the autoscaler a count above it. The autoscaler's own AUTOSCALER_MAX_REPLICAS comes with its
 * pod, so for a while after an upgrade lowered it (or in an overlay that changed one and not the
 * other) the two differ, and a decision above the guard's was refused at every tick.
 */
export const MAX_REPLICAS_ANNOTATION = 'wagate.io/autoscaler-max-replicas';

/** The guard's bound, when the annotation holds a whole number from 1. */
export function parseMaxReplicas(annotations: Record<string, string> | undefined): number | undefined {
  const text = annotations?.[MAX_REPLICAS_ANNOTATION]?.trim() ?? '';
  const value = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  return Number.isSafeInteger(value) && value >= 1 ? value : undefined;
}

/** Which scaler the worker Deployment names (the chart and k8s/ set it); absent on a Deployment made by hand. */
export const MODE_ANNOTATION = 'wagate.io/autoscaling-mode';

/**
 * Paused by a person, or the Deployment names another scaler: an autoscaler left running after
 * a switch to KEDA or the HPA (kubectl apply does not prune it) must not fight that scaler.
 */
export function isPaused(annotations: Record<string, string> | undefined): boolean {
  const mode = annotations?.[MODE_ANNOTATION]?.trim();
  if (mode !== undefined && mode !== 'builtin') return true;
  return annotations?.[PAUSED_ANNOTATION]?.trim().toLowerCase() === 'true';
}

/** "HH:MM" in UTC, as the Event says it; Events carry their own full timestamps. */
export function clockTime(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(11, 16);
}
