import type { Sql } from '../db/client';

/**
 * Past this many rows waiting for a sweep, an owner's new rows all wait for it too, without
 * asking whose rows wait: the question would cost a lookup per waiting row on every commit.
 */
const WAITING_ROWS_LOOKED_AT = 1000;
/** Senders remembered as released; beyond, the record starts again and older checks count as stale. */
const SENDERS_REMEMBERED = 10_000;

/**
 * Which senders' new rows must wait for a sweep because rows of theirs already do. While rows
 * wait, an owner that sent every new row to the sweep behind them never saw the end of it
 * under steady traffic: each new row it handed over was due at once, so every poll found rows
 * waiting again, and every message went through the sweep for as long as messages came. Only
 * the senders with rows waiting need to: for the others, nothing of theirs can be overtaken.
 *
 * A release commits after a snapshot that it began before: like the relay's backlog read, a
 * sender with a release under way when the read starts, or begun during it, counts as behind.
 */
export interface SendersBehind {
  /**
   * Marks the senders of rows being handed to the sweep until `done` is called. A release that
   * failed leaves its rows leased to this process, unseen by the read, for up to a lease: their
   * senders stay behind that long.
   */
  releasing(senders: readonly string[]): (failed: boolean) => void;
  /**
   * Makes every check already made stale: a batch handed back unwritten (its deadline cut it,
   * or it may not write) is released only after the batches queued behind it have asked
   * whether to write, and none of its senders' rows may go out before it.
   */
  forgetChecks(): void;
  /** The senders among these that must wait, and a check that none of the others has been released since. */
  check(senders: readonly string[]): Promise<{ behind: Set<string>; stillAhead: () => boolean }>;
}

export function createSendersBehind(sql: Sql, leaseMs: number): SendersBehind {
  let releaseSeq = 0;
  /** Sender → the sequence number of the last release begun for it. */
  const lastRelease = new Map<string, number>();
  /** Checks taken at or before this number were made before the record was cleared. */
  let forgottenUpTo = 0;
  const underWay = new Map<string, number>();
  /** Sender → until when a failed release keeps it behind (epoch ms). */
  const heldUntil = new Map<string, number>();
  const held = (sender: string) => {
    const until = heldUntil.get(sender);
    if (until !== undefined && until <= Date.now()) heldUntil.delete(sender);
    return until !== undefined && until > Date.now();
  };

  const releasedSince = (sender: string, seq: number) => seq < forgottenUpTo || (lastRelease.get(sender) ?? 0) > seq;

  return {
    releasing(senders) {
      for (const sender of senders) {
        releaseSeq += 1;
        lastRelease.set(sender, releaseSeq);
        underWay.set(sender, (underWay.get(sender) ?? 0) + 1);
      }
      if (lastRelease.size > SENDERS_REMEMBERED) {
        lastRelease.clear();
        forgottenUpTo = releaseSeq;
      }
      return (failed) => {
        for (const sender of senders) {
          const left = (underWay.get(sender) ?? 1) - 1;
          if (left === 0) underWay.delete(sender);
          else underWay.set(sender, left);
          if (failed) heldUntil.set(sender, Date.now() + leaseMs);
        }
      };
    },
    forgetChecks() {
      releaseSeq += 1;
      forgottenUpTo = releaseSeq;
    },
    async check(senders) {
      const seq = releaseSeq;
      const behind = new Set(senders.filter((sender) => underWay.has(sender) || held(sender)));
      const [row] = await sql<{ waiting: number; behind: string[] }[]>`
        WITH w AS MATERIALIZED (
          SELECT webhook_message_id FROM outbox WHERE lease_until < now() OR attempts > 0 LIMIT ${WAITING_ROWS_LOOKED_AT + 1})
        SELECT (SELECT count(*) FROM w)::integer AS waiting,
          ARRAY(SELECT DISTINCT m.sender_key FROM w JOIN webhook_messages m ON m.id = w.webhook_message_id
                WHERE m.sender_key = ANY(${senders as string[]}::text[]) AND (SELECT count(*) FROM w) <= ${WAITING_ROWS_LOOKED_AT}) AS behind`;
      const all = row!.waiting > WAITING_ROWS_LOOKED_AT;
      for (const sender of senders) if (all || row!.behind.includes(sender) || releasedSince(sender, seq)) behind.add(sender);
      const ahead = senders.filter((sender) => !behind.has(sender));
      return { behind, stillAhead: () => ahead.every((sender) => !releasedSince(sender, seq)) };
    },
  };
}
