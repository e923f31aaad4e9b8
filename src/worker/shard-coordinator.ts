import { timerOf, type StallWatch } from '../db/stall-watch';
import type { Logger } from '../telemetry/logger';
import { settleWithin } from '../settle-within';
import type { Metrics } from '../telemetry/metrics';
import type { WorkerConsumer } from './consumer';
import { MemberRowGone, type GroupView, type MembershipStore } from './membership-store';
import { assignShards } from './shard-assignment';
import { watchLease } from './lease-watch';

/**
 * Reads further apart than a third of the liveness timeout count as a gap in sight of the
 * group: afterwards the worker waits a full timeout before declaring anyone dead. Never less
 * than two heartbeats, though: at the lowest allowed liveness (3 heartbeats) a third is one
 * heartbeat, and ticks that are a millisecond late would make every other read a gap, so a
 * dead worker's shards would hardly ever be taken over.
 */
const GAP_FRACTION_OF_LIVENESS = 3;
const GAP_MIN_HEARTBEATS = 2;
/** How long a stopping worker waits to read who owns its shards (see stop). */
const OWNERS_READ_AT_STOP_MS = 1000;
/** How often a stopping worker records again a shard release whose record failed. */
const RELEASE_RECORD_RETRY_MS = 250;
/** How often a worker repeats that a reshard still pauses its group, for an interrupted one. */
const PAUSED_REMINDER_MS = 5 * 60_000;

export interface CoordinatorDeps {
  store: MembershipStore;
  consumer: Pick<WorkerConsumer, 'hasChannel' | 'subscribe' | 'isSubscribed' | 'release' | 'relinquish'>;
  memberId: string;
  shardCount: number;
  /** Each shard consumer's prefetch for a worker holding this many shards (shardPrefetch). */
  prefetchFor(share: number): number;
  heartbeatMs: number;
  livenessTimeoutMs: number;
  log: Logger;
  metrics: Metrics;
  /** How often a paused group is mentioned again in the log (5 minutes). */
  pausedReminderMs?: number;
  /** Times the heartbeat and the group's read: one that hangs keeps this worker's shards from the others. */
  stallWatch?: StallWatch;
}

export interface ShardCoordinator {
  start(): void;
  /** One round: heartbeat, read the group, release and take shards. Safe to call any time. */
  tick(): Promise<void>;
  /** Shards whose ownership this worker has recorded and not yet released. */
  owned(): number[];
  /**
   * How long, at least, no other worker can take this worker's shards (leftMs): the liveness
   * timeout from when its last successful heartbeat was sent (the heartbeat's time in Postgres
   * is no earlier). Negative once that has passed, before the first heartbeat, and once the
   * worker has left the group over a shard-count mismatch. The tenure changes whenever a heartbeat goes through after the
   * lease had run out: work begun in an earlier tenure must not go on, since the shards may
   * have passed to another worker in the gap.
   */
  lease(): { tenure: number; leftMs: number };
  /**
   * Marks the worker as leaving, releases every shard (finishing the messages in hand), then
   * leaves the group. Heartbeats go on meanwhile, so that nobody takes a shard over before its
   * release is recorded; the others take each shard as soon as it is released.
   * Resolves false if timeoutMs passed first; the rest then moves when the heartbeat expires.
   */
  stop(timeoutMs: number): Promise<boolean>;
}

/**
 * Keeps this worker's share of the shards. Every worker computes the same assignment from
 * the sorted live members (see assignShards); the owner table in Postgres makes hand-overs
 * safe: a shard is released (consumer cancelled, its messages in hand finished, the release
 * recorded) before anyone else may subscribe, unless its owner's heartbeat has expired; a
 * release whose heartbeats stall gives back what it has not finished before then (watchLease).
 *
 * A worker is live while it heartbeats, and it heartbeats only while it holds a broker
 * channel, or has work under way on shards it is letting go. When Postgres cannot be read, nothing changes: workers keep their shards. After
 * such a gap a worker also waits one liveness timeout before it takes a shard from an
 * owner whose heartbeat looks expired, since the others missed their heartbeats too.
 */
export function createShardCoordinator(deps: CoordinatorDeps): ShardCoordinator {
  const { store, consumer, memberId: me, log, metrics } = deps;
  const gapMs = Math.max(deps.livenessTimeoutMs / GAP_FRACTION_OF_LIVENESS, GAP_MIN_HEARTBEATS * deps.heartbeatMs);
  const held = new Set<number>();
  const busy = new Set<number>();
  const releases = new Set<Promise<void>>();
  /** Takes under way, which a stop waits for so that it releases what they took. */
  const taking = new Set<Promise<void>>();
  /** The prefetch each held shard's consumer was started with. */
  const prefetchOf = new Map<number, number>();
  let resubscribing: Promise<void> | null = null;
  /** Start of the current run of group reads that followed one another closely (see readGroup). */
  let postgresSeenSince: number | null = null;
  let lastRead: number | null = null;
  /**
   * Whether the failure to read the group was told: once a run of failures, including one
   * that starts with the worker, which during an outage would otherwise say nothing at all.
   */
  let groupUnreadTold = false;
  /** Whether a stopping heartbeat that found the member row gone was told: once, whatever else failed. */
  let memberGoneTold = false;
  /** When the last heartbeat that succeeded was sent (performance.now()); null before the first, or once left. */
  let heartbeatSentAt: number | null = null;
  /** Whether the last heartbeat sent has not gone through: it hangs, or failed (see watchLease). */
  let heartbeatOutstanding = false;
  let tenure = 0;
  let stopping = false;
  let ticking: Promise<void> | null = null;
  /** The next round's timer while the rounds run (start), null once the worker has stopped. */
  let timer: NodeJS.Timeout | null = null;
  let running = false;
  /** WORK_SHARDS differs from the stored count: such a worker stays out of the group. */
  let mismatched = false;
  /** Since when a reshard has paused the group as this worker saw it, and when it last said so. */
  let pausedSince: number | null = null;
  let pausedToldAt = 0;

  const timed = timerOf(deps.stallWatch);

  /** Watches the lease for a release under way: one whose heartbeats stall gives back what it has not started in time. */
  const leaseWatch = () => watchLease({ leftMs: leaseLeftMs, heartbeatOutstanding: () => heartbeatOutstanding }, deps);

  function releaseInBackground(shard: number, reason: string, takenOver = false): void {
    busy.add(shard);
    const watch = takenOver ? null : leaseWatch();
    // Said once per release: a retried record (its consumer gone already) has nothing to finish.
    if (watch && consumer.isSubscribed(shard)) log.info({ shard, reason }, 'releasing a shard: its consumer is cancelled, and the release is recorded once the messages in hand are finished');
    const work = (async () => {
      // The new owner already waits on the queue: see WorkerConsumer.relinquish.
      await (watch ? consumer.release(shard, watch) : consumer.relinquish(shard));
      await store.release(me, [shard]);
      held.delete(shard);
      prefetchOf.delete(shard);
      metrics.shardsOwned.set(held.size);
      metrics.rebalances.inc({ direction: 'released' });
      log.info({ shard, reason }, 'shard released');
    })()
      .catch((error: Error) => log.warn({ shard, err: error.message }, 'could not record a shard release; trying again'))
      .finally(() => {
        watch?.stop();
        busy.delete(shard);
        releases.delete(work);
      });
    releases.add(work);
  }

  /**
   * A shard recorded as ours that we do not hold: its take committed but its answer was lost
   * (a connection reset during a failover). Nobody else may take it while we live, so unless
   * it is ours to take, the record is cleared; its consumer never started, so nothing is in hand.
   */
  function releaseStrayRecords(view: GroupView, targets: (string | undefined)[]): void {
    const stray = [...view.owners].flatMap(([shard, owner]) =>
      owner === me && !held.has(shard) && !busy.has(shard) && targets[shard] !== me ? [shard] : []);
    if (stray.length === 0) return;
    void store.release(me, stray)
      .then(() => log.warn({ shards: stray }, 'cleared shard records that named this worker without its holding them'))
      .catch((error: Error) => log.warn({ shards: stray, err: error.message }, 'could not clear stray shard records; trying again'));
  }

  function acquire(shard: number, takeExpired: boolean, prefetch: number): Promise<void> {
    const work = take(shard, takeExpired, prefetch);
    taking.add(work);
    return work.finally(() => taking.delete(work));
  }

  async function take(shard: number, takeExpired: boolean, prefetch: number): Promise<void> {
    busy.add(shard);
    try {
      if (!(await store.acquire(me, shard, takeExpired))) return;
      // A stop began meanwhile: its release round may be past, so the record goes back at once.
      if (stopping) return void (await store.release(me, [shard]));
      held.add(shard);
      // Without a channel the shard stays recorded as ours; the next round releases it.
      if (await consumer.subscribe(shard, prefetch)) {
        prefetchOf.set(shard, prefetch);
        metrics.rebalances.inc({ direction: 'acquired' });
        log.info({ shard }, 'shard acquired');
      }
    } catch (error) {
      log.warn({ shard, err: (error as Error).message }, 'could not take a shard');
    } finally {
      busy.delete(shard);
    }
  }

  /**
   * Starts a held shard's consumer again with the prefetch of the worker's current share:
   * an existing consumer keeps the prefetch it was started with, so a worker that gave
   * shards to a newcomer would otherwise hold fewer messages than the newcomer does. The
   * shard stays recorded as this worker's, and its messages in hand are finished first, as
   * in any release. One shard at a time, so that the others keep flowing meanwhile.
   */
  function resubscribeInBackground(shard: number, prefetch: number): void {
    busy.add(shard);
    const from = prefetchOf.get(shard);
    const watch = leaseWatch();
    let stalled = false;
    void watch.stalled.then(() => (stalled = true));
    resubscribing = (async () => {
      await consumer.release(shard, watch);
      prefetchOf.delete(shard);
      // Without a channel (or once stopping) the next round releases it as a lost consumer; so
      // with heartbeats that stalled meanwhile, rather than take deliveries only to give them back.
      if (!stopping && !stalled && (await consumer.subscribe(shard, prefetch))) {
        prefetchOf.set(shard, prefetch);
        log.info({ shard, from, to: prefetch }, 'shard consumer restarted with the prefetch of this worker\'s share');
      }
    })()
      .catch((error: Error) => log.warn({ shard, err: error.message }, 'could not restart a shard consumer'))
      .finally(() => {
        watch.stop();
        busy.delete(shard);
        resubscribing = null;
      });
  }

  /** A consumer whose prefetch is off by half or more from the share's, once the group is settled. */
  function consumerToRestart(targets: (string | undefined)[], prefetch: number): number | undefined {
    if (resubscribing || busy.size > 0 || releases.size > 0 || stopping) return undefined;
    if (targets.some((target, shard) => (target === me) !== held.has(shard))) return undefined;
    return [...held].find((shard) => {
      const current = prefetchOf.get(shard);
      return current !== undefined && Math.max(current, prefetch) >= 1.5 * Math.min(current, prefetch);
    });
  }

  function leaseLeftMs(): number {
    return heartbeatSentAt === null ? -Infinity : deps.livenessTimeoutMs - (performance.now() - heartbeatSentAt);
  }

  async function readGroup(): Promise<GroupView | null> {
    try {
      // Without a channel the worker lets its shards go, but only once the work under way on
      // them is finished (a provider call can take REPLY_TIMEOUT_MS), in a release or a
      // consumer's restart: until then it stays live,
      // or another worker could take a shard over and run the sender's next messages beside it.
      if ((consumer.hasChannel() || releases.size > 0 || resubscribing !== null) && !mismatched) {
        const sentAt = performance.now();
        heartbeatOutstanding = true;
        await timed('worker group heartbeat', () => store.heartbeat(me, !stopping));
        heartbeatOutstanding = false;
        // A heartbeat that goes through after the lease ran out does not extend it: another
        // worker may have taken the shards in the gap. It starts a new tenure instead.
        if (heartbeatSentAt === null || performance.now() - heartbeatSentAt >= deps.livenessTimeoutMs) tenure += 1;
        heartbeatSentAt = sentAt;
      }
      const view = await timed('worker group read', () => store.read());
      // A read that hung through an outage is a gap too, not continuous sight of the group.
      const now = performance.now();
      if (lastRead === null || now - lastRead > gapMs) postgresSeenSince = now;
      lastRead = now;
      groupUnreadTold = false;
      return view;
    } catch (error) {
      // Postgres answered here: only the stopping worker's lease is lost, and with it the shards.
      if (error instanceof MemberRowGone) {
        if (!memberGoneTold) log.warn({ held: held.size }, `${error.message} while the worker stops: its heartbeats count for nothing, and the shards it still holds are handed on as if taken over`);
        memberGoneTold = true;
      } else {
        if (!groupUnreadTold) log.warn({ err: (error as Error).message, held: held.size }, 'cannot read the worker group from Postgres; keeping the shards held and taking none until it answers');
        groupUnreadTold = true;
      }
      postgresSeenSince = null;
      lastRead = null;
      // Unknown, not the last figures read: NaN shows as a gap, and max() across workers skips it.
      metrics.groupMembers.set(Number.NaN);
      metrics.groupPaused.set(Number.NaN);
      return null;
    }
  }

  /** A worker with another shard count neither holds shards nor counts as a member, or its share would go unconsumed. */
  async function checkCount(view: GroupView): Promise<boolean> {
    const matches = view.shardCount === null || view.shardCount === deps.shardCount;
    if (!matches && !mismatched) {
      // Out of the group, nobody waits for this worker's heartbeat before taking its shards.
      heartbeatSentAt = null;
      log.error({ configured: deps.shardCount, stored: view.shardCount }, 'WORK_SHARDS differs from the stored shard count (wagate reshard changed it); this worker holds no shard until it runs with the stored count');
      await store.leave(me).catch(() => undefined);
    }
    mismatched = !matches;
    return matches;
  }

  /**
   * A paused group consumes nothing, and an interrupted reshard leaves it paused until the
   * same command is run again: each worker says so when it happens, and again every few
   * minutes, so that the logs of an idle group explain it.
   */
  function notePause(view: GroupView): void {
    metrics.groupPaused.set(view.paused ? 1 : 0);
    const now = performance.now();
    if (!view.paused) {
      if (pausedSince !== null) log.info({ pausedSeconds: Math.round((now - pausedSince) / 1000) }, 'the reshard has resumed the worker group; taking shards again');
      pausedSince = null;
      return;
    }
    if (pausedSince !== null && now - pausedToldAt < (deps.pausedReminderMs ?? PAUSED_REMINDER_MS)) return;
    const pausedSeconds = pausedSince === null ? 0 : Math.round((now - pausedSince) / 1000);
    pausedSince ??= now;
    pausedToldAt = now;
    log.warn({ pausedSeconds, held: held.size },
      'a wagate reshard pauses the worker group (work_shard_settings.paused): this worker finishes what it holds, releases its shards and takes none until the reshard ends; if no reshard is running, one was interrupted: run the same wagate reshard --to N again');
  }

  function whyNotOurs(view: GroupView | null, shard: number): string {
    if (view === null) return 'owners unread';
    return view.owners.get(shard) === me ? 'its heartbeat lapsed' : 'taken over after it missed its heartbeats';
  }

  function targetsOf(view: GroupView): (string | undefined)[] {
    if (mismatched || view.paused || !consumer.hasChannel()) return [];
    return assignShards(deps.shardCount, view.liveMembers);
  }

  async function tickOnce(): Promise<void> {
    const view = await readGroup();
    if (!view || stopping) return;
    metrics.groupMembers.set(view.liveMembers.length);
    await checkCount(view);
    notePause(view);
    const targets = targetsOf(view);
    // Whoever saw this worker's heartbeat expire may take its shards at any moment: a cancel
    // would then hand the queue over while the messages in hand still run, so they are
    // relinquished as if taken over already.
    // So may anyone, at once, once a worker with another shard count has left the group (checkCount).
    const lapsed = !view.heartbeating.includes(me) || mismatched;
    for (const shard of held) {
      if (busy.has(shard)) continue;
      if (!consumer.isSubscribed(shard)) releaseInBackground(shard, 'consumer lost with its channel');
      else if (view.owners.get(shard) !== me) releaseInBackground(shard, 'taken over after this worker missed its heartbeats', true);
      else if (lapsed) releaseInBackground(shard, 'this worker\'s heartbeat lapsed; handed on as if taken over', true);
      else if (targets[shard] !== me) releaseInBackground(shard, 'rebalance');
    }
    releaseStrayRecords(view, targets);
    const takeExpired = postgresSeenSince !== null && performance.now() - postgresSeenSince >= deps.livenessTimeoutMs;
    const wanted = targets.flatMap((target, shard) => {
      if (target !== me || held.has(shard) || busy.has(shard)) return [];
      const owner = view.owners.get(shard) ?? null;
      const free = owner === null || owner === me || (takeExpired && !view.liveMembers.includes(owner));
      return free ? [shard] : [];
    });
    const share = targets.filter((target) => target === me).length;
    const prefetch = deps.prefetchFor(share);
    // A take waits on the broker (a channel, the queue's declaration, the consume): the round
    // waits for it at most a heartbeat, so that a slow broker does not hold up the heartbeats
    // and, with them, the lease. The takes go on meanwhile (busy and taking track them).
    await settleWithin(Promise.all(wanted.map((shard) => acquire(shard, takeExpired, prefetch))), deps.heartbeatMs, undefined);
    metrics.shardsOwned.set(held.size);
    const restart = consumerToRestart(targets, prefetch);
    if (restart !== undefined) resubscribeInBackground(restart, prefetch);
  }

  async function tick(): Promise<void> {
    if (ticking) return ticking;
    ticking = tickOnce().finally(() => (ticking = null));
    return ticking;
  }

  return {
    start() {
      // Each round is timed from the start of the one before, and one that took longer than a
      // heartbeat is followed at once. On a fixed interval, a round slower than a heartbeat
      // skipped the next turn: its reads came two heartbeats apart, which at the lowest
      // liveness is a gap in sight of the group, and an expired worker's shards never moved.
      if (running) return;
      running = true;
      const round = () => {
        const startedAt = performance.now();
        void tick().catch((error: Error) => log.error({ err: error.message }, 'a round of the worker group failed; trying again at the next heartbeat')).finally(() => {
          if (!running) return;
          timer = setTimeout(round, Math.max(0, deps.heartbeatMs - (performance.now() - startedAt)));
          timer.unref();
        });
      };
      round();
    },
    tick,
    owned: () => [...held].sort((a, b) => a - b),
    lease: () => ({ tenure, leftMs: leaseLeftMs() }),
    async stop(timeoutMs) {
      stopping = true;
      const deadline = performance.now() + timeoutMs;
      const left = () => deadline - performance.now();
      // Out of the others' assignment at once, so that each shard released below is taken
      // right away, rather than once the last one is (a slow drain) or the heartbeat expires.
      await settleWithin(store.markLeaving(me).catch(() => undefined), Math.min(left(), deps.heartbeatMs), undefined);
      // Every wait counts toward the timeout, so that nothing keeps the worker past its grace
      // period. A tick normally takes milliseconds: one hung on Postgres (a locked member row,
      // a starved pool) is given a heartbeat, and the shards it is not taking are released meanwhile.
      await settleWithin(Promise.resolve(ticking), Math.min(left(), deps.heartbeatMs), undefined);
      // A take already past its record is subscribing: once it has, its shard is released below.
      await settleWithin(Promise.allSettled([...taking]), left(), undefined);
      // A shard taken over that no round has noticed (heartbeats that stalled are often why a
      // worker is stopped) is relinquished, not released: its new owner already waits on the
      // queue, and a cancel would hand it the queue while the messages in hand still run. So is
      // every shard when the owners cannot be read in time (Postgres hung, or slow on a busy
      // node): the plain release then let the successor run a sender's next messages beside
      // the ones in hand. Relinquishing a shard nobody took costs only the return of the
      // messages not yet started.
      // So is every shard when this worker's own heartbeat has lapsed, as in a tick.
      const readOwners = () => settleWithin(store.read().catch(() => null), Math.min(left(), Math.max(deps.heartbeatMs, OWNERS_READ_AT_STOP_MS)), null);
      const releaseForStop = (view: GroupView | null) => {
        for (const shard of held) {
          if (busy.has(shard)) continue;
          const ours = view !== null && view.owners.get(shard) === me && view.heartbeating.includes(me) && leaseLeftMs() > 0;
          releaseInBackground(shard, ours ? 'worker stopping' : `worker stopping; ${whyNotOurs(view, shard)}, so handed on as if taken over`, !ours);
        }
      };
      releaseForStop(await readOwners());
      // A consumer restart under way finishes its shard's messages in hand (up to a sender's
      // prefetch) and, once stopping, does not subscribe again: its shard is released after it,
      // while the others, released above, already move to other workers. Who owns it is read
      // again: the restart may have outlasted this worker's lease.
      if (resubscribing) {
        await settleWithin(Promise.resolve(resubscribing), left(), undefined);
        releaseForStop(await readOwners());
      }
      const drained = (async () => {
        for (;;) {
          while (releases.size > 0) await Promise.allSettled([...releases]);
          if (held.size === 0 || left() <= 0) return held.size === 0;
          // A release whose record failed (a Postgres blip): its messages are finished and its
          // consumer gone, so only the record is tried again, until the deadline. No tick runs
          // any more to do it, and the shard would wait for this worker's heartbeat to expire.
          await new Promise((resolve) => setTimeout(resolve, Math.min(RELEASE_RECORD_RETRY_MS, left())));
          for (const shard of held) if (!busy.has(shard)) releaseInBackground(shard, 'worker stopping; its release recorded again');
        }
      })();
      const done = await settleWithin(drained, left(), false);
      running = false;
      if (timer) clearTimeout(timer);
      if (done) await settleWithin(store.leave(me).catch(() => undefined), left(), undefined);
      else log.warn({ shards: [...held] }, 'drain timed out; these shards move to other workers once this worker\'s heartbeat expires');
      metrics.shardsOwned.set(held.size);
      return done;
    },
  };
}
