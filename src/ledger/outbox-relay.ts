import { randomUUID } from 'node:crypto';
import type { Sql } from '../db/client';
import { isUndefinedTable } from '../db/postgres-errors';
import { stopsAt } from '../failpoints';
import { amqpMessageId, type QueueMessage } from '../queue/message';
import type { Publication, Publisher } from '../queue/publisher';
import { routingKeyFor, type Topology } from '../queue/topology';
import { failureStreak } from '../telemetry/failure-streak';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { createLinger } from './linger';
import { claimExpiredRows } from './outbox-claim';
import type { QueuedEntry } from './recorder';
import { createSendersBehind } from './senders-behind';
import { createOwnerHandOn } from './owner-hand-on';
import type { Outcome, Outgoing } from './outgoing';
import { recordTooLarge } from './outbox-too-large';

/**
 * A pause lets confirms from many batches share one DELETE and one commit. Nothing waits for
 * the DELETE (a confirmed row is only republished if this process dies first, or stops while
 * Postgres refuses the DELETE, and the worker recognises the copy), so the pause is long: at low rates a short one costs Postgres a commit
 * every few messages.
 */
const DELETE_GATHER_MS = 50;
/** The longest a row the broker refused waits before a sweep claims it again. */
const MAX_RELEASE_BACKOFF_SECONDS = 30;
/** After a failed DELETE of confirmed rows, the pause before the next try. */
const DELETE_RETRY_MS = 1000;
/**
 * The most an owner publish keeps of its rows' lease past the confirm deadline, for the renewal
 * sent then to commit; half of what the lease leaves past the deadline when that is less.
 */
const MAX_RENEWAL_ROOM_MS = 5000;

export interface OutboxRelayOptions {
  sql: Sql;
  publisher: Publisher;
  topology: Topology;
  /**
   * Whether a publish can reach the broker now: connected, and not blocked by a resource alarm.
   * A blocked broker reads nothing, so rows written to it would pile up in this process's
   * socket buffer, and after each lease period a sweep would write them again.
   */
  canPublish(): boolean;
  leaseSeconds: number;
  /** The publisher's confirm deadline: an owner publish must end before its rows' lease does. */
  confirmTimeoutMs: number;
  /** The largest message the broker takes (BROKER_MAX_MESSAGE_BYTES); larger ones are recorded dead. Unbounded when absent. */
  maxMessageBytes?: number;
  pollMs: number;
  log: Logger;
  metrics: Metrics;
  sweepBatch?: number;
  /**
   * How long the owner gathers committed rows before publishing them together (0: at once).
   * At low rates the broker otherwise confirms, and a quorum queue syncs, each message alone.
   */
  publishLingerMs: number;
  /** How long the backlog gauges keep their last reading while PostgreSQL does not answer (OUTBOX_GAUGES_KEPT_MS). */
  gaugesKeptMs?: number;
}

/**
 * About WagateOutboxBacklog's 5 minutes: a 0 would restart its wait each time PostgreSQL
 * stumbled. Not for good: a pod cut off from PostgreSQL, still scraped, kept reporting the
 * backlog it last saw, and the alert's max() fired on it after the outbox had drained.
 */
const OUTBOX_GAUGES_KEPT_MS = 5 * 60_000;

export interface OutboxRelay {
  /**
   * Publishes rows this process just committed; called by the ledger right after commit.
   * Settles, never failing, once the broker has answered: true when every row was confirmed.
   */
  publishOwned(entries: QueuedEntry[]): Promise<boolean>;
  /** Publishes every row whose lease has expired, once; returns how many were confirmed. */
  sweepOnce(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

/**
 * Moves outbox rows to RabbitMQ. The owner publishes its own rows at once, inside their
 * lease; a periodic sweep claims rows whose lease expired (broker outage, crashed owner), one
 * sweep at a time across the pods (a lease row), in commit order. While rows wait for a sweep, the
 * new rows of their senders wait for it too: published at once, a sender's new message would
 * reach its queue before the one it sent during the outage. Confirmed rows are deleted in batches.
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const sweepBatch = options.sweepBatch ?? 500;
  const toDelete: string[] = [];
  const inFlight = new Set<Promise<unknown>>();
  let deleteTimer: NodeJS.Timeout | null = null;
  let pollTimer: NodeJS.Timeout | null = null;
  let sweeping: Promise<number> | null = null;
  let stopping = false;
  /** Rows wait for a sweep (seen unpublishable, or claimed by one): new rows are left to it too, behind them. */
  let backlog = false;
  /**
   * Releases of leases under way, and how often rows were found to wait: a read of the outbox
   * whose snapshot missed a release (its UPDATE not yet committed) or a batch cut meanwhile must
   * not clear the backlog they set, or a sender's next message would go out before them.
   */
  let releasing = 0;
  let backlogMarks = 0;
  const sendersBehind = createSendersBehind(options.sql, options.leaseSeconds * 1000);
  const ownerHandOn = createOwnerHandOn({
    backlog: () => backlog,
    sendersBehind,
    release: (rows) => track(releaseLeases(rows)),
    publish: (rows) => track(publishGathered(rows)),
    log: options.log,
  });
  function markBacklog(): void {
    backlog = true;
    backlogMarks += 1;
  }
  /** This relay as the holder of the sweeper lease (migrations/021). */
  const sweeperId = `${process.pid}-${randomUUID()}`;
  /**
   * Rows whose publish the broker has not answered by the deadline, on a channel still open:
   * id → the claim (attempts) they went out under. Their leases are renewed until the answer
   * comes (a channel that closes answers every one of them, refused), so that a broker slower
   * than a lease (a quorum queue without its majority, the connection up) does not get a second
   * copy from a sweep; should this process die, the renewals stop and a sweep takes the rows.
   */
  const unanswered = new Map<string, number>();
  let renewTimer: NodeJS.Timeout | null = null;

  function track<T>(promise: Promise<T>): Promise<T> {
    inFlight.add(promise);
    void promise.finally(() => inFlight.delete(promise)).catch(() => undefined);
    return promise;
  }

  /**
   * Publishes and settles the rows: confirmed ones are deleted, refused ones released to the next
   * sweep at once. A row the broker has not answered by the deadline keeps its lease, renewed
   * while the answer is awaited: its message may still arrive, and publishing it again would
   * queue a second copy although no process died. Its late answer settles it (a closed channel
   * answers refused); if this process dies first, the lease expires and a sweep takes it.
   * True where confirmed.
   */
  async function publish(entries: Outgoing[], path: 'owner' | 'sweep'): Promise<boolean[]> {
    const started = performance.now();
    const settleLate = (index: number, ok: boolean) => {
      const entry = entries[index]!;
      if (unanswered.get(entry.id) === entry.attempts) unanswered.delete(entry.id);
      if (!ok) {
        markBacklog();
        // A renewal of its lease sent before this answer may land after the release, hiding the
        // row for a lease: its sender waits behind it that long.
        sendersBehind.hold([entry.sender]);
        return void track(releaseLeases([entry]));
      }
      options.metrics.published.inc({ path });
      toDelete.push(entry.id);
      scheduleDelete();
    };
    const results = await options.publisher.publishAll(
      options.topology.exchange,
      entries.map((entry) => entry.publication),
      settleLate,
      path === 'owner' ? ownerOrder(entries) : sweepOrder(entries),
    );
    options.metrics.publishDuration.observe((performance.now() - started) / 1000);
    const failed: Outgoing[] = [];
    const pending: Outgoing[] = [];
    results.forEach((ok, index) => {
      if (ok) toDelete.push(entries[index]!.id);
      else if (ok === false) failed.push(entries[index]!);
      else pending.push(entries[index]!);
    });
    if (pending.length > 0) {
      for (const entry of pending) unanswered.set(entry.id, entry.attempts);
      // At once: the owner's rows may have little of their lease left after the deadline.
      void track(renewLeases(pending));
    }
    const confirmed = results.filter((ok) => ok === true).length;
    options.metrics.published.inc({ path }, confirmed);
    if (confirmed < results.length) options.metrics.publishFailures.inc(results.length - confirmed);
    // A refused row waits for a sweep from now on, and so does what is committed after it: the
    // next poll would say so too, but a sender's next message may commit before then.
    if (failed.length > 0) {
      markBacklog();
      await releaseLeases(failed);
    }
    scheduleDelete();
    return results.map((ok) => ok === true);
  }

  /**
   * An owner batch writes only while no row waits for a sweep, or, published while some do,
   * none of its senders' rows has been handed to the sweep since: one gathered or queued behind
   * a batch whose deadline left rows unwritten would otherwise put a sender's next message
   * ahead of them. A sweep's batches come one at a time, in commit order, and always write.
   */
  const ownerOrder = (entries: Outgoing[]) => ({
    mayWrite: () => {
      const may = entries.every((entry) => entry.mayWrite?.() ?? !backlog);
      if (!may) handedBack(entries);
      return may;
    },
    onUnwritten: () => handedBack(entries),
  });
  const sweepOrder = (entries: Outgoing[]) => ({ mayWrite: () => true, onUnwritten: () => handedBack(entries) });
  /**
   * Rows of a batch go back to the sweep, their release still to come: nothing of their
   * senders queued behind them may write past them meanwhile.
   */
  function handedBack(entries: Outgoing[]): void {
    markBacklog();
    sendersBehind.hold(entries.map((entry) => entry.sender));
  }

  /** Sets whether rows wait for a sweep, by a read that a release under way or begun meanwhile cannot fool. */
  async function refreshBacklog(leftBehind = false): Promise<boolean> {
    const marks = backlogMarks;
    // A release under way when the read starts may commit after its snapshot, even if it ends
    // first; one begun during the read has marked the backlog.
    const releasingAtStart = releasing > 0;
    const waiting = await rowsWaiting();
    // Rows handed back or whose release failed keep their lease: no read sees them until it expires.
    // Set here, in the step that judges it: a caller's later assignment could undo a mark made in between.
    backlog = leftBehind || waiting || releasingAtStart || backlogMarks !== marks || sendersBehind.anyHeld();
    return backlog;
  }

  const publishGathered = createLinger(options.publishLingerMs, (entries: Outgoing[]) => publishOrRecord(entries, 'owner'));

  /**
   * Publishes the rows the broker can take; one too large for it is recorded dead instead
   * ('dead'), as the broker would refuse it every time. True where confirmed.
   */
  async function publishOrRecord(entries: Outgoing[], path: 'owner' | 'sweep'): Promise<Outcome[]> {
    const limit = options.maxMessageBytes ?? Number.POSITIVE_INFINITY;
    const fits = (entry: Outgoing) => entry.publication.body.length <= limit;
    if (entries.every(fits)) return publish(entries, path);
    const fitting = entries.filter(fits);
    const [published, recorded] = await Promise.all([fitting.length > 0 ? publish(fitting, path) : [], recordDead(entries.filter((entry) => !fits(entry)), limit)]);
    let next = 0;
    return entries.map((entry) => (fits(entry) ? published[next++]! : recorded));
  }

  async function recordDead(entries: Outgoing[], limit: number): Promise<'dead' | false> {
    try {
      const messageIds = await recordTooLarge(options.sql, entries.map((entry) => ({ id: entry.id, attempts: entry.attempts, bytes: entry.publication.body.length })), limit);
      if (messageIds.length > 0) {
        options.metrics.messagesTooLarge.inc(messageIds.length);
        options.log.error({ count: messageIds.length, limit, messageIds }, 'messages too large for the broker (BROKER_MAX_MESSAGE_BYTES) recorded dead instead of published');
      }
      return 'dead';
    } catch (error) {
      options.log.warn({ err: (error as Error).message, count: entries.length }, 'could not record messages too large for the broker; a later sweep tries again');
      await releaseLeases(entries);
      return false;
    }
  }

  /**
   * Hands rows this process could not publish to the next sweep, on any process: at once the
   * first time, then a second later per sweep that claimed them, up to 30 s. A row the broker
   * keeps refusing (its queue deleted under a live connection, so every publish comes back)
   * would otherwise be claimed first by every sweep, ahead of every row after it. Only where no
   * sweep has claimed the row since (its attempts unchanged): a refusal that comes late must
   * not cut short the lease of another process now publishing it.
   */
  async function releaseLeases(entries: Pick<Outgoing, 'id' | 'attempts' | 'sender'>[]): Promise<void> {
    releasing += 1;
    const done = sendersBehind.releasing(entries.map((entry) => entry.sender));
    markBacklog();
    let released = false;
    try {
      released = await releaseLeasesNow(entries);
    } finally {
      releasing -= 1;
      done(!released);
    }
  }

  /** False where the release failed: the rows keep their lease, and are swept once it expires. */
  async function releaseLeasesNow(entries: Pick<Outgoing, 'id' | 'attempts'>[]): Promise<boolean> {
    return options.sql`UPDATE outbox o SET lease_until = now() + make_interval(secs => least(o.attempts, ${MAX_RELEASE_BACKOFF_SECONDS}))
                      FROM unnest(${entries.map((entry) => entry.id)}::bigint[], ${entries.map((entry) => entry.attempts)}::integer[]) AS r(id, attempts)
                      WHERE o.webhook_message_id = r.id AND o.attempts = r.attempts`.then(
      () => true,
      (error: Error) => {
        options.log.warn({ err: error.message }, 'could not release outbox leases; they expire on their own');
        return false;
      },
    );
  }

  /** Extends the leases of rows still awaiting the broker's answer, where no sweep has claimed them since. */
  async function renewLeases(entries: Pick<Outgoing, 'id' | 'attempts'>[]): Promise<void> {
    const waiting = entries.filter((entry) => unanswered.get(entry.id) === entry.attempts);
    if (waiting.length === 0) return;
    await options.sql`UPDATE outbox o SET lease_until = now() + make_interval(secs => ${options.leaseSeconds})
                      FROM unnest(${waiting.map((entry) => entry.id)}::bigint[], ${waiting.map((entry) => entry.attempts)}::integer[]) AS r(id, attempts)
                      WHERE o.webhook_message_id = r.id AND o.attempts = r.attempts`.catch(
      (error: Error) => options.log.warn({ err: error.message, count: waiting.length }, 'could not renew the leases of outbox rows awaiting the broker\'s answer; a sweep may publish them again once they expire'),
    );
  }

  function scheduleDelete(): void {
    if (deleteTimer || toDelete.length === 0) return;
    deleteTimer = setTimeout(() => void track(flushDeletes()), DELETE_GATHER_MS);
  }

  /** Deletes what is confirmed now, after any delete already under way. */
  async function flushDeletesNow(): Promise<void> {
    if (deleteTimer) clearTimeout(deleteTimer);
    await flushDeletes();
  }

  /** One delete at a time: a sweep waiting for its confirmed rows to go waits for those in a running delete too. */
  let deleting: Promise<void> = Promise.resolve();
  function flushDeletes(): Promise<void> {
    deleteTimer = null;
    deleting = deleting.then(deleteConfirmed);
    return deleting;
  }

  async function deleteConfirmed(): Promise<void> {
    const ids = toDelete.splice(0, toDelete.length);
    if (ids.length === 0) return;
    try {
      await options.sql`DELETE FROM outbox WHERE webhook_message_id = ANY(${ids}::bigint[])`;
    } catch (error) {
      // Still confirmed; keep the ids and try again rather than republishing later.
      toDelete.push(...ids);
      // Once stopping, stop() makes the last try itself: a timer armed here would go on
      // trying, every second, after the pool has closed, for as long as the process lives.
      if (stopping) {
        options.log.warn({ err: (error as Error).message, count: ids.length }, 'outbox delete failed while stopping; rows whose delete still fails when the relay has stopped stay in the outbox, and a sweep publishes them again once their leases expire (the worker skips the copies)');
        return;
      }
      options.log.warn({ err: (error as Error).message, count: ids.length }, 'outbox delete failed; will retry');
      if (deleteTimer) clearTimeout(deleteTimer);
      deleteTimer = setTimeout(() => void track(flushDeletes()), DELETE_RETRY_MS).unref();
    }
  }

  /**
   * Takes or renews the sweeper lease (migrations/021): one sweep at a time across the pods, so
   * that two never publish neighbouring batches at once. It outlasts one batch's publish.
   */
  async function holdSweeperLease(): Promise<boolean> {
    try {
      const held = await options.sql`
        UPDATE outbox_sweeper SET holder = ${sweeperId}, lease_until = now() + make_interval(secs => ${options.leaseSeconds})
        WHERE lease_until < now() OR holder = ${sweeperId}`;
      return held.count === 1;
    } catch (error) {
      // A schema without the lease (migration 021 not yet applied): sweep as releases before it did.
      if (isUndefinedTable(error)) return true;
      throw error;
    }
  }

  /**
   * Whether rows wait for a sweep, whoever committed them (a broker outage leaves other pods'
   * rows too), or are in one (claimed: attempts above 0, and not yet confirmed).
   */
  async function rowsWaiting(): Promise<boolean> {
    const [waiting] = await options.sql<{ any: boolean }[]>`SELECT EXISTS (SELECT 1 FROM outbox WHERE lease_until < now() OR attempts > 0) AS any`;
    return waiting?.any ?? true;
  }

  /** A pod that cannot sweep now (the broker away, or another pod sweeping) only learns whether rows wait, for its owner publishes. */
  async function sweepAlone(): Promise<number> {
    // A sweep that a reconnect starts after stop() would query a closing pool.
    if (stopping) return 0;
    // Read-only first: an idle poll (nothing waiting, the usual case) writes nothing.
    await refreshBacklog();
    if (!backlog || stopping || !options.canPublish() || !(await holdSweeperLease())) return 0;
    try {
      return await sweep();
    } finally {
      await options.sql`UPDATE outbox_sweeper SET lease_until = '-infinity' WHERE holder = ${sweeperId}`.catch(() => undefined);
    }
  }

  async function sweep(): Promise<number> {
    let total = 0;
    /** Batches claimed so far: the sweeper lease is renewed before each after the first. */
    let batches = 0;
    // A row refused in this sweep waits for a later one (its lease released with a backoff).
    let leftBehind = false;
    // Where the claim looks: past windows of held-back rows only, and never at a sender with a
    // row passed over in this sweep, even once the row that held it back is due again.
    let afterId = '0';
    const heldSenders = new Set<string>();
    for (;;) {
      // A stopping process leaves the rest of a backlog to the other pods' sweeps once the
      // leases it holds expire, instead of outliving its grace period and being killed mid-publish.
      if (stopping || !options.canPublish()) return total;
      // The rows the last batch confirmed go first: left in the outbox, they would hold back
      // their senders' next rows from this claim (claimExpiredRows).
      await flushDeletesNow();
      // Renewed for each batch; lost (this pod stalled past it), another pod sweeps now.
      if (batches > 0 && !(await holdSweeperLease())) return total;
      const claim = await claimExpiredRows(options.sql, options.leaseSeconds, sweepBatch, { afterId, heldSenders: [...heldSenders] });
      for (const row of claim.held) heldSenders.add(row.sender);
      leftBehind ||= claim.held.length > 0;
      const rows = claim.rows;
      if (rows.length === 0) {
        // A window of held-back rows only (a queue that does not answer, its senders' rows
        // first in line): the rows after them go on.
        if (claim.windowFull && claim.lastDueId !== null) {
          afterId = claim.lastDueId;
          continue;
        }
        // Nothing more to claim: rows committed from now on may go out at once again, unless
        // some still wait (refused in this sweep or one before, or behind such a row).
        await refreshBacklog(leftBehind);
        return total;
      }
      batches += 1;
      markBacklog();
      // A row whose message is no longer queued with a payload (erased, cleaned up, gone) has
      // nothing to publish; it must not hold up the rows claimed with it.
      const publishable = rows.filter((row) => row.payload !== null);
      const stale = rows.filter((row) => row.payload === null).map((row) => row.id);
      if (stale.length > 0) {
        options.log.info({ count: stale.length }, 'dropping outbox rows whose message is no longer queued');
        toDelete.push(...stale);
        scheduleDelete();
      }
      if (publishable.length > 0) {
        const results = await publishOrRecord(
          publishable.map((row) => ({ id: row.id, attempts: row.attempts, sender: row.payload!.senderKey, publication: toPublication(options.topology, row.payload!, row.traceparent ?? '') })),
          'sweep',
        );
        const confirmed = results.filter((result) => result === true).length;
        total += confirmed;
        leftBehind ||= results.includes(false);
        // Nothing of a whole batch confirmed: the broker is refusing; the next poll tries again.
        if (results.every((result) => result === false)) return total;
      }
    }
  }

  let gaugesReadAt = Date.now();
  let gauging: Promise<void> | null = null;
  /**
   * One reading at a time, as one sweep: the count reads the whole outbox, and after a long broker
   * outage (millions of rows) one outlasts the poll; started at every poll they piled up on the
   * pool's connections while the ledger's commits waited behind them.
   */
  function refreshBacklogGaugesAlone(): Promise<void> {
    // One that never answers (a connection dead without a reset) must not keep the last reading
    // standing for this pod past the time a failed one would.
    if (gauging && Date.now() - gaugesReadAt > (options.gaugesKeptMs ?? OUTBOX_GAUGES_KEPT_MS)) unknownGauges();
    gauging ??= refreshBacklogGauges().finally(() => (gauging = null));
    return gauging;
  }
  function unknownGauges(): void {
    options.metrics.outboxPending.set(Number.NaN);
    options.metrics.outboxOldestSeconds.set(Number.NaN);
  }
  async function refreshBacklogGauges(): Promise<void> {
    try {
      const [row] = await options.sql<{ pending: number; oldest: number | null }[]>`
        SELECT count(*)::integer AS pending, extract(epoch FROM now() - min(created_at))::float8 AS oldest FROM outbox`;
      gaugesReadAt = Date.now();
      options.metrics.outboxPending.set(row?.pending ?? 0);
      options.metrics.outboxOldestSeconds.set(row?.oldest ?? 0);
    } catch {
      // NaN, which max() passes over, once the last reading is too old to stand for this pod.
      if (Date.now() - gaugesReadAt <= (options.gaugesKeptMs ?? OUTBOX_GAUGES_KEPT_MS)) return;
      unknownGauges();
    }
  }

  async function publishOwned(entries: QueuedEntry[]): Promise<boolean> {
    if (stopsAt('ingest.after-commit')) return false;
    // A row whose lease could run out before the broker's confirm (a slow commit ate it) is
    // left to the sweep: otherwise a sweeper could claim and publish it while this publish is
    // still unanswered, and the message would go out twice without any process dying.
    // Such rows are released to the sweep at once rather than left to their lease: in the
    // meantime their senders' next messages would go out ahead of them. The rows committed
    // with them and after them wait for that sweep too.
    // And room is kept after the deadline for the renewal it then sends to commit: landing
    // after the lease ran out, a sweep could claim the row first, and publish it again.
    const leaseMs = options.leaseSeconds * 1000;
    const renewalRoomMs = Math.min(MAX_RENEWAL_ROOM_MS, (leaseMs - options.confirmTimeoutMs) / 2);
    const stillFresh = () => entries.every((entry) =>
      Date.now() - entry.leaseStartedAtMs + options.publishLingerMs + options.confirmTimeoutMs + renewalRoomMs < leaseMs);
    // The ledger commits its own rows unclaimed: attempts 0.
    const owned: Outgoing[] = entries.map((entry) => ({
      id: entry.rowId, attempts: 0, sender: entry.payload.senderKey, publication: toPublication(options.topology, entry.payload, entry.traceparent),
    }));
    // Its rows now wait for the sweep, and so do those committed after them.
    if (!stillFresh() || !options.canPublish()) {
      markBacklog();
      await track(releaseLeases(owned));
      return false;
    }
    // Handed on in the order of the calls, the commits' order: a commit's rows must not go
    // ahead of an earlier commit's rows still waiting for a read of whose rows wait.
    if (!backlog && !ownerHandOn.busy()) return (await track(publishGathered(owned))).every((outcome) => outcome === true);
    return track(ownerHandOn.handOn(owned, stillFresh));
  }

  function sweepOnce(): Promise<number> {
    sweeping ??= track(sweepAlone()).finally(() => (sweeping = null));
    return sweeping;
  }

  return {
    publishOwned(entries) {
      // Never rejects: with ACK_AFTER=commit nobody waits on it, and its rows are safe in the outbox anyway.
      return publishOwned(entries).catch((error: Error) => {
        options.log.warn({ err: error.message }, 'owner publish failed; the sweep will retry');
        return false;
      });
    },
    sweepOnce,
    start() {
      const sweeps = failureStreak(options.log, {
        failing: 'outbox sweeps fail; their rows stay in the outbox and every poll tries again (check Postgres); said again each minute while they fail',
        recovered: 'outbox sweeps work again',
      });
      pollTimer = setInterval(() => {
        void sweepOnce().then(() => sweeps.succeeded(), (error: Error) => sweeps.failed(error));
        void refreshBacklogGaugesAlone().catch(() => undefined);
      }, options.pollMs);
      // Three renewals a lease, so that one failed write (Postgres away for a moment) loses none.
      renewTimer = setInterval(() => {
        void renewLeases([...unanswered].map(([id, attempts]) => ({ id, attempts })));
      }, (options.leaseSeconds * 1000) / 3);
      renewTimer.unref();
    },
    async stop() {
      stopping = true;
      if (pollTimer) clearInterval(pollTimer);
      if (renewTimer) clearInterval(renewTimer);
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      if (deleteTimer) clearTimeout(deleteTimer);
      await flushDeletes();
    },
  };
}

export function toPublication(topology: Topology, payload: QueueMessage, traceparent: string): Publication {
  return {
    messageId: amqpMessageId(payload.source, payload.messageId),
    routingKey: routingKeyFor(topology, payload.senderKey),
    body: Buffer.from(JSON.stringify(payload)),
    traceparent,
  };
}
