import type { Topology } from '../queue/topology';

/** The longest Retry-After honoured; a provider asking for more gets its answer a day later. */
export const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;

/** How early a parked message may come back and still go ahead: tier TTLs are not exact either. */
const EARLY_ENOUGH_MS = 250;

export type RetryPlan = { kind: 'retry'; tier: number; attempt: number; notBefore?: number } | { kind: 'exhausted' };

/**
 * Where a failed message goes. Tries are counted, not tiers: a message is tried once, then
 * once per tier, whatever its Retry-After. A Retry-After longer than the next tier's delay
 * parks it in the first tier long enough, or in the longest one with a not-before time, so
 * that it waits again (without a try) until the provider's time has passed.
 */
export function planRetry(topology: Topology, attempt: number, retryAfterMs: number | undefined, nowMs: number): RetryPlan {
  if (attempt >= topology.retryTiers.length) return { kind: 'exhausted' };
  const waitMs = Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
  const tier = tierLongEnough(topology, attempt, waitMs);
  const notBefore = waitMs > topology.retryTiers[tier]!.delayMs ? nowMs + waitMs : undefined;
  return { kind: 'retry', tier, attempt: attempt + 1, notBefore };
}

/**
 * Where a message goes when the database, not the message, failed: it waits in the first tier
 * at least waitMs long (or the longest) without using a try, so an outage of any length does
 * not exhaust the tiers and dead-letter a whole backlog.
 */
export function planWait(topology: Topology, attempt: number, waitMs: number): RetryPlan {
  return { kind: 'retry', tier: tierLongEnough(topology, 0, waitMs), attempt };
}

/** For a message back from a tier before its not-before time: the tier to wait in next, or null to go ahead. */
export function tierToWaitOut(topology: Topology, notBefore: number | undefined, nowMs: number): number | null {
  if (notBefore === undefined || notBefore - nowMs <= EARLY_ENOUGH_MS) return null;
  return tierLongEnough(topology, 0, notBefore - nowMs);
}

/** The first tier from `from` on whose delay covers waitMs, or the longest. */
function tierLongEnough(topology: Topology, from: number, waitMs: number): number {
  const tiers = topology.retryTiers;
  for (let index = from; index < tiers.length; index += 1) if (tiers[index]!.delayMs >= waitMs) return index;
  return tiers.length - 1;
}
