/**
 * Named points where a test can stop a process, to kill it there (SIGKILL) and prove that
 * nothing is lost or done twice. `WAGATE_FAILPOINT=<name>` arms one point; reaching it prints
 * one JSON line on stdout and then never resolves, so the process holds still at that step.
 * With `WAGATE_FAILPOINT_ACTION=pause` the process stops itself there (SIGSTOP) instead, and
 * goes on from that step when the test sends SIGCONT: for races with a step that follows.
 * Config validation accepts both only when NODE_ENV is test, so production refuses to start
 * with them; this module also checks NODE_ENV itself, in case a command skipped it.
 */
export const FAILPOINTS = [
  'ingest.after-commit',
  'worker.after-claim',
  'worker.after-record',
  'worker.in-decision',
  'worker.before-ack',
  'worker.before-retry-ack',
  'worker.before-dead-letter-publish',
  'worker.after-dead-letter-publish',
  'worker.after-dead-record',
  'reshard.distributing',
  'reshard.before-move',
  'reshard.gathering',
  'replies.resend-after-mark',
] as const;

export type Failpoint = (typeof FAILPOINTS)[number];

const armed = process.env.NODE_ENV === 'test' ? process.env.WAGATE_FAILPOINT : undefined;
const pauses = process.env.WAGATE_FAILPOINT_ACTION === 'pause';
const NEVER = new Promise<never>(() => undefined);

/** Resolves at once unless this point is armed; an armed point announces itself and holds (or pauses). */
export function failpoint(name: Failpoint): Promise<void> {
  return stopsAt(name) ? NEVER : Promise.resolve();
}

/** For synchronous code: true (after announcing) when this point is armed to hold, so the caller stops there. */
export function stopsAt(name: Failpoint): boolean {
  if (armed !== name) return false;
  // Written to a pipe, stdout is synchronous: the line is out before the process stops.
  process.stdout.write(`${JSON.stringify({ msg: 'failpoint reached', failpoint: name, pid: process.pid })}\n`);
  if (!pauses) return true;
  process.kill(process.pid, 'SIGSTOP');
  return false;
}
