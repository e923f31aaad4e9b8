import type { Sql } from '../db/client';

/**
 * Past this many rows waiting for a sweep, an owner's new rows all wait for it too, without
 * asking whose rows wait: the question would cost a lookup per waiting row on every read.
 */
const WAITING_ROWS_LOOKED_AT = 1000;
/** Senders remembered as handed over; beyond, the record starts again and older reads count as stale. */
const SENDERS_REMEMBERED = 10_000;

/** What a read of the outbox found, and how to tell later whether a sender has been handed over since. */
export interface SendersRead {
  /** Whether this sender's new rows must wait for the sweep, now. */
  behind(sender: string): boolean;
}

/**
 * Which senders' new rows must wait for a sweep because rows of theirs already do. While rows
 * wait, an owner that sent every new row to the sweep behind them never saw the end of it
 * under steady traffic: each new row it handed over was due at once, so every poll found rows
 * waiting again, and every message went through the sweep for as long as messages came. Only
 * the senders with rows waiting need to: for the others, nothing of theirs can be overtaken.
 *
 * The read cannot see everything this process hands over: a release commits after a snapshot
 * begun before it, and rows handed back by a batch (cut at its deadline, or not allowed to
 * write) or whose release failed keep their lease, with attempts 0, like rows still being
 * published. So a sender counts as behind from the moment this process hands a row of theirs
 * over until the release has committed, and for a lease after a hand-back or a failed release.
 */
export interface SendersBehind {
  /** Marks the senders of rows being released to the sweep until `done`; a failed release holds them for a lease. */
  releasing(senders: readonly string[]): (failed: boolean) => void;
  /** Holds these senders behind for a lease: rows of theirs went back unwritten, their release still to come. */
  hold(senders: readonly string[]): void;
  /** Whether a hold is in force: rows this process handed over may be unseen by any read of the outbox. */
  anyHeld(): boolean;
  /** Reads whose rows wait among these senders; a sender handed over since also counts as behind. */
  read(senders: readonly string[]): Promise<SendersRead>;
}

export function createSendersBehind(sql: Sql, leaseMs: number): SendersBehind {
  let handOverSeq = 0;
  /** Sender → the sequence number of the last hand-over of a row of theirs. */
  const lastHandOver = new Map<string, number>();
  /** Reads taken before this number were made before the record was cleared. */
  let forgottenBefore = 0;
  /** Sender → releases of their rows begun and not yet ended. */
  const underWay = new Map<string, number>();
  /** Sender → until when a hand-back or a failed release keeps them behind (epoch ms). */
  const heldUntil = new Map<string, number>();

  function handedOver(senders: readonly string[]): void {
    for (const sender of senders) {
      handOverSeq += 1;
      lastHandOver.set(sender, handOverSeq);
    }
    if (lastHandOver.size > SENDERS_REMEMBERED) {
      lastHandOver.clear();
      forgottenBefore = handOverSeq + 1;
    }
  }
  function hold(senders: readonly string[]): void {
    handedOver(senders);
    const until = Date.now() + leaseMs;
    for (const sender of senders) heldUntil.set(sender, until);
  }
  function held(sender: string): boolean {
    const until = heldUntil.get(sender);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    heldUntil.delete(sender);
    return false;
  }
  const handedOverSince = (sender: string, seq: number) => seq < forgottenBefore || (lastHandOver.get(sender) ?? 0) > seq;

  return {
    releasing(senders) {
      handedOver(senders);
      for (const sender of senders) underWay.set(sender, (underWay.get(sender) ?? 0) + 1);
      return (failed) => {
        for (const sender of senders) {
          const left = (underWay.get(sender) ?? 1) - 1;
          if (left === 0) underWay.delete(sender);
          else underWay.set(sender, left);
        }
        if (failed) hold(senders);
      };
    },
    hold,
    anyHeld() {
      for (const sender of [...heldUntil.keys()]) if (held(sender)) return true;
      return false;
    },
    async read(senders) {
      const seq = handOverSeq;
      // A release under way may commit after the read's snapshot; a hold may end after it.
      const atStart = new Set([...underWay.keys(), ...senders.filter(held)]);
      const [row] = await sql<{ waiting: number; behind: string[] }[]>`
        WITH w AS MATERIALIZED (
          SELECT webhook_message_id FROM outbox WHERE lease_until < now() OR attempts > 0 LIMIT ${WAITING_ROWS_LOOKED_AT + 1})
        SELECT (SELECT count(*) FROM w)::integer AS waiting,
          ARRAY(SELECT DISTINCT m.sender_key FROM w JOIN webhook_messages m ON m.id = w.webhook_message_id
                WHERE m.sender_key = ANY(${senders as string[]}::text[]) AND (SELECT count(*) FROM w) <= ${WAITING_ROWS_LOOKED_AT}) AS behind`;
      const all = row!.waiting > WAITING_ROWS_LOOKED_AT;
      const waiting = new Set(row!.behind);
      // Under way or held at the read's start, held now, or handed over since the read began: its rows may be unseen.
      return { behind: (sender) => all || waiting.has(sender) || atStart.has(sender) || held(sender) || handedOverSince(sender, seq) };
    },
  };
}
