import { failAfter } from '../settle-within';
import type { Logger } from '../telemetry/logger';
import type { Outcome, Outgoing } from './outgoing';
import type { SendersBehind, SendersRead } from './senders-behind';

/** Calls that may wait for the read ahead of them; beyond, a commit's rows go to the sweep at once. */
const MAX_CALLS_WAITING = 10_000;
/**
 * How long a read may take before its calls' rows go to the sweep: one on a connection whose
 * peer vanished would otherwise hold every later commit's rows until TCP gave up.
 */
const READ_DEADLINE_MS = 5000;

export interface OwnerHandOnDeps {
  /** Whether rows wait for a sweep. */
  backlog(): boolean;
  sendersBehind: SendersBehind;
  /** Hands rows to the sweep. */
  release(rows: Outgoing[]): Promise<void>;
  /** Publishes rows as their owner, in the order of the calls. */
  publish(rows: Outgoing[]): Promise<Outcome[]>;
  log: Logger;
}

export interface OwnerHandOn {
  /** Whether calls wait for their turn: a call made now must wait behind them. */
  busy(): boolean;
  /**
   * Publishes a commit's rows whose senders have none waiting for a sweep, and hands the others
   * to it, in the order of the calls; `stillFresh` says whether the rows' lease still leaves
   * time for a confirm. Settles once the broker has answered: true when every row was confirmed.
   */
  handOn(rows: Outgoing[], stillFresh: () => boolean): Promise<boolean>;
}

interface Call {
  rows: Outgoing[];
  stillFresh(): boolean;
  handedOn(settled: Promise<boolean>): void;
}

/**
 * While rows wait for a sweep, each commit's rows are handed on after one read of whose rows
 * wait, for all the calls that came while the read before was made: the calls keep their
 * order (a commit's rows must not go ahead of an earlier commit's), and a burst of commits
 * costs one read, not one each.
 */
export function createOwnerHandOn(deps: OwnerHandOnDeps): OwnerHandOn {
  const waiting: Call[] = [];
  let reading = false;

  const toSweep = async (rows: Outgoing[]) => {
    await deps.release(rows);
    return false;
  };

  async function readWhoWaits(calls: Call[]): Promise<SendersRead | null> {
    const senders = [...new Set(calls.flatMap((call) => call.rows.map((row) => row.sender)))];
    try {
      return await failAfter(deps.sendersBehind.read(senders), READ_DEADLINE_MS, () => new Error(`no answer within ${READ_DEADLINE_MS} ms`));
    } catch (error) {
      deps.log.warn({ err: (error as Error).message }, 'could not read whose outbox rows wait for a sweep; these commits\' rows wait for it too');
      return null;
    }
  }

  /** Hands one call's rows on at once, without waiting: the next call's must follow them. */
  function handOnNow(call: Call, read: SendersRead | 'no backlog' | null): Promise<boolean> {
    // Rows whose wait for their turn (and the read) ate into their lease go to the sweep, as at the start.
    if (!call.stillFresh() || read === null) return toSweep(call.rows);
    if (read === 'no backlog') return deps.publish(call.rows).then((outcomes) => outcomes.every((outcome) => outcome === true));
    const behind = call.rows.filter((row) => read.behind(row.sender));
    // Written only while their sender is still free to go when the batches ahead have written.
    const ahead = call.rows.filter((row) => !read.behind(row.sender)).map((row) => ({ ...row, mayWrite: () => !read.behind(row.sender) }));
    const released = behind.length > 0 ? deps.release(behind) : Promise.resolve();
    const published = ahead.length > 0 ? deps.publish(ahead) : Promise.resolve([]);
    return Promise.all([released, published]).then(([, outcomes]) => behind.length === 0 && outcomes.every((outcome) => outcome === true));
  }

  async function takeTurns(): Promise<void> {
    reading = true;
    try {
      while (waiting.length > 0) {
        const calls = waiting.splice(0, waiting.length);
        const read = deps.backlog() ? await readWhoWaits(calls) : 'no backlog';
        for (const call of calls) call.handedOn(handOnNow(call, read));
      }
    } finally {
      reading = false;
    }
  }

  return {
    busy: () => reading || waiting.length > 0,
    handOn(rows, stillFresh) {
      // Held, their senders count as behind for the calls still waiting too, whose reads come later.
      if (waiting.length >= MAX_CALLS_WAITING) {
        deps.sendersBehind.hold(rows.map((row) => row.sender));
        return toSweep(rows);
      }
      return new Promise<boolean>((resolve, reject) => {
        waiting.push({ rows, stillFresh, handedOn: (settled) => settled.then(resolve, reject) });
        if (!reading) void takeTurns();
      });
    },
  };
}
