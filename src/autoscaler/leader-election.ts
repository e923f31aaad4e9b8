import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../telemetry/logger';
import { statusOf } from './api-status';
import { abortedBy } from './kube-client';

/**
 * Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection package
 * (client-node has none). Every write carries the resourceVersion it read, so two candidates
 * cannot both win. A standby judges expiry by its own clock, from the moment it last saw the
 * Lease change, so clock skew between pods does not matter; and, as client-go does, on a
 * monotonic clock, so a step of its own wall clock (an NTP correction) does not make a standby
 * take a live leader's Lease, nor stretch a leader's renew deadline past the Lease's duration.
 * Only the times written into the Lease are wall-clock times.
 */
export interface LeaderElectionOptions {
  coordination: CoordinationV1Api;
  namespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  onLeadingChange(leading: boolean): void;
  /**
   * Whether this candidate can do a leader's work now (its Postgres answers, so it can count
   * the backlog). One that cannot takes no Lease; a leader that has not been able to for a
   * whole lease duration hands it back, so that a standby that can takes over, rather than
   * holding the Lease through an outage of its own while the workers go unscaled. Absent: always.
   */
  fitToLead?(): Promise<boolean>;
}

export interface LeaderElector {
  isLeader(): boolean;
  /** Whether the last try reached the API server (readiness). */
  apiReachable(): boolean;
  /** Stops campaigning and, when leading, hands the Lease back so a standby takes it at once. */
  release(): Promise<void>;
}

/** Standbys spread their tries so they do not all hit the API server at the same moment. */
const RETRY_JITTER = 0.2;

export function startLeaderElection(options: LeaderElectionOptions): LeaderElector {
  const { coordination, namespace, leaseName: name, identity, log } = options;
  let leading = false;
  let reachable = false;
  let lastRenewMs = 0;
  let stopped = false;
  let observed: { key: string; atMs: number } | null = null;
  let timer: NodeJS.Timeout | undefined;
  let attempt: Promise<void> = Promise.resolve();
  /** Since when fitToLead has said no without a yes between (performance.now()); null while fit. */
  let unfitSinceMs: number | null = null;
  /** Aborts a try still waiting for the API server when the stop comes. */
  const stopping = new AbortController();

  const setLeading = (value: boolean) => {
    if (leading === value) return;
    leading = value;
    log.info({ lease: name, identity }, value ? 'became the leader' : 'stopped leading');
    options.onLeadingChange(value);
  };

  /** The other holder's lease is still valid by our own clock since we last saw it renewed. */
  const heldByOther = (lease: V1Lease, nowMs: number): boolean => {
    const spec = lease.spec ?? {};
    if (!spec.holderIdentity || spec.holderIdentity === identity) return false;
    // client-node hands MicroTime fields back as the server's string.
    const key = `${spec.holderIdentity}/${String(spec.renewTime ?? '')}`;
    if (observed?.key !== key) observed = { key, atMs: nowMs };
    return observed.atMs + (spec.leaseDurationSeconds ?? 0) * 1000 > nowMs;
  };

  /**
   * 'lost' when another holder's lease is valid: a leader then stops at once. `signal` ends the
   * try (its deadline, or the stop): a try given up must not write the Lease afterwards.
   */
  const tryAcquireOrRenew = async (now: V1MicroTime, signal: AbortSignal): Promise<'held' | 'lost' | 'conflict'> => {
    const lease = await readLease(coordination, namespace, name, signal);
    signal.throwIfAborted();
    if (!lease) {
      if (await createLease(coordination, namespace, name, leaseSpec(identity, options.leaseDurationMs, now, 0), signal)) return 'held';
      // Another candidate created it since the read (the Lease was deleted: kubectl, a GitOps
      // prune) and holds it from now on. A leader that took this for a conflict kept acting
      // until its next try, beside the new holder. Read again: the Lease may also be our own,
      // from a create of an earlier try that was given up after it was sent.
      // A read that fails is a conflict, as the refusal was before: the create did reach the server.
      const created = await readLease(coordination, namespace, name, signal).catch(() => null);
      return created && heldByOther(created, performance.now()) ? 'lost' : 'conflict';
    }
    // Seen when the answer came, as client-go does: a read the API server held up for seconds
    // may show a renewal made late in that wait, and timed from the start of the try it would
    // look older than it is, and the Lease expire early by this standby's count.
    if (heldByOther(lease, performance.now())) return 'lost';
    const spec = lease.spec ?? {};
    const renewing = spec.holderIdentity === identity;
    const transitions = (spec.leaseTransitions ?? 0) + (renewing ? 0 : 1);
    const next = leaseSpec(identity, options.leaseDurationMs, now, transitions);
    if (renewing && spec.acquireTime) next.acquireTime = spec.acquireTime;
    return (await replaceLease(coordination, { ...lease, spec: next }, signal)) ? 'held' : 'conflict';
  };

  /** Gives the Lease back, bounded like a try: a silent API server must not hold it up past the renew deadline. */
  const handBack = () =>
    withDeadline(giveBack(coordination, namespace, name, identity, AbortSignal.timeout(options.renewDeadlineMs)), options.renewDeadlineMs);

  let fitCheck: Promise<void> | null = null;
  const checkFit = (fitToLead: () => Promise<boolean>): Promise<void> => {
    const startedMs = performance.now();
    fitCheck ??= withDeadline(fitToLead(), options.renewDeadlineMs)
      .catch(() => false)
      .then((fit) => {
        unfitSinceMs = fit ? null : (unfitSinceMs ?? startedMs);
      })
      .finally(() => {
        fitCheck = null;
      });
    return fitCheck;
  };

  /** False when this candidate should not try for the Lease now; a leader unfit for a lease duration hands it back. */
  const fitNow = async (): Promise<boolean> => {
    if (!options.fitToLead) return true;
    // A leader's renewal does not wait for the check (a hung Postgres would push it past its
    // renew deadline): it goes by the answers of the checks before.
    if (leading) void checkFit(options.fitToLead);
    else await checkFit(options.fitToLead);
    if (unfitSinceMs === null) return true;
    const unfitForMs = performance.now() - unfitSinceMs;
    // A blip does not move the leadership: a leader keeps renewing for a lease duration.
    if (leading && unfitForMs < options.leaseDurationMs) return true;
    if (leading) {
      setLeading(false);
      log.warn({ lease: name, identity, unfitForMs: Math.round(unfitForMs) }, 'handing the Lease back: this autoscaler has not reached Postgres for a lease duration; a standby that can takes over');
      await handBack().catch((error: Error) =>
        log.warn({ err: error.message, lease: name }, 'could not hand the Lease back; a standby takes it when it expires'),
      );
    }
    return false;
  };

  const tick = async () => {
    if (!(await fitNow()) || stopped) return;
    const now = new V1MicroTime();
    const startedMs = performance.now();
    // A hung request must not stall the loop: it counts as a failed try after the renew deadline,
    // and is aborted then, so that its answer cannot write the Lease after this try was given up
    // (nor after the stop handed it back).
    const tryEnds = AbortSignal.any([AbortSignal.timeout(options.renewDeadlineMs), stopping.signal]);
    const outcome = await withDeadline(tryAcquireOrRenew(now, tryEnds), options.renewDeadlineMs).then(
      (result) => {
        reachable = true;
        return result;
      },
      (error: Error) => {
        reachable = false;
        // A try the stop aborted has nothing to say.
        if (!stopped) log.warn({ err: error.message, lease: name }, 'could not reach the Lease');
        return 'error' as const;
      },
    );
    // Counted from the start of the try: the lease runs from the renewTime it wrote.
    if (outcome === 'held') lastRenewMs = startedMs;
    if (stopped) return;
    // A leader that cannot renew within the deadline stops acting before a standby may take over.
    setLeading(outcome === 'held' || (outcome !== 'lost' && leading && performance.now() - lastRenewMs < options.renewDeadlineMs));
  };

  const schedule = () => {
    if (stopped) return;
    const jitter = leading ? 0 : Math.random() * RETRY_JITTER * options.retryPeriodMs;
    timer = setTimeout(() => {
      attempt = tick().finally(schedule);
    }, options.retryPeriodMs + jitter);
  };
  // The renew deadline also holds while a request hangs: checked apart from the tries.
  const watchdog = setInterval(() => {
    if (leading && performance.now() - lastRenewMs >= options.renewDeadlineMs) setLeading(false);
  }, Math.min(1000, options.retryPeriodMs));
  attempt = tick().finally(schedule);

  return {
    isLeader: () => leading,
    apiReachable: () => reachable,
    async release() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(watchdog);
      stopping.abort();
      await attempt;
      setLeading(false);
      // Even a leader that just missed its renew deadline may still be the holder on record.
      // Bounded like a try: a silent API server must not hold the stop past the pod's grace period.
      await handBack().catch((error: Error) =>
        log.warn({ err: error.message, lease: name }, 'could not release the Lease; a standby takes it when it expires'),
      );
    },
  };
}

/** Times are V1MicroTime: the API server reads MicroTime with exactly six fractional digits. */
function withDeadline<T>(work: Promise<T>, deadlineMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the API server within ${deadlineMs} ms`)), deadlineMs);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function leaseSpec(identity: string, durationMs: number, now: V1MicroTime, transitions: number): NonNullable<V1Lease['spec']> {
  return {
    holderIdentity: identity,
    leaseDurationSeconds: Math.ceil(durationMs / 1000),
    acquireTime: now,
    renewTime: now,
    leaseTransitions: transitions,
  };
}

async function readLease(coordination: CoordinationV1Api, namespace: string, name: string, signal: AbortSignal): Promise<V1Lease | null> {
  try {
    return await coordination.readNamespacedLease({ name, namespace }, abortedBy(signal));
  } catch (error) {
    if (statusOf(error) === 404) return null;
    throw error;
  }
}

/** False when another candidate created it first (409). */
async function createLease(coordination: CoordinationV1Api, namespace: string, name: string, spec: V1Lease['spec'], signal: AbortSignal): Promise<boolean> {
  try {
    await coordination.createNamespacedLease({ namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name }, spec } }, abortedBy(signal));
    return true;
  } catch (error) {
    if (statusOf(error) === 409) return false;
    throw error;
  }
}

/** False when someone wrote the Lease since it was read (409 on its resourceVersion). */
async function replaceLease(coordination: CoordinationV1Api, lease: V1Lease, signal: AbortSignal): Promise<boolean> {
  try {
    await coordination.replaceNamespacedLease({ name: lease.metadata!.name!, namespace: lease.metadata!.namespace!, body: lease }, abortedBy(signal));
    return true;
  } catch (error) {
    if (statusOf(error) === 409) return false;
    throw error;
  }
}

/** Like client-go: no holder and a one-second duration, so the next try of any standby wins. */
async function giveBack(coordination: CoordinationV1Api, namespace: string, name: string, identity: string, signal: AbortSignal): Promise<void> {
  // A renewal of ours that the API server applied after this read (a try the stop aborted,
  // already sent) makes the write conflict: read again, rather than leave the Lease held.
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const lease = await readLease(coordination, namespace, name, signal);
    if (!lease || lease.spec?.holderIdentity !== identity) return;
    const now = new V1MicroTime();
    const released = await replaceLease(coordination, {
      ...lease,
      spec: { leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: lease.spec.leaseTransitions ?? 0 },
    }, signal);
    if (released) return;
  }
}
