import type { Logger } from './logger';

/** While a failure lasts, how often it is logged again. */
const DEFAULT_REMINDER_MS = 60_000;

export interface FailureStreak {
  /** One more failure: logged if it starts a streak, or if the last line is older than the reminder. */
  failed(error: Error): void;
  /** A success: ends the streak, with a line that says how long it lasted and how many tries failed. */
  succeeded(): void;
}

/**
 * Logs a task that repeats on a timer and fails the same way each time (a poll during an outage)
 * once when it starts failing, again every `reminderMs` while it keeps failing, and once when
 * it works again: a line per try buried the logs of a Postgres outage under one warning a second.
 */
export function failureStreak(log: Logger, messages: { failing: string; recovered: string }, reminderMs = DEFAULT_REMINDER_MS): FailureStreak {
  let streak: { since: number; failures: number; toldAt: number } | null = null;
  return {
    failed(error) {
      const now = performance.now();
      streak ??= { since: now, failures: 0, toldAt: -Infinity };
      streak.failures += 1;
      if (now - streak.toldAt < reminderMs) return;
      streak.toldAt = now;
      log.warn({ err: error.message, failures: streak.failures, failingForMs: Math.round(now - streak.since) }, messages.failing);
    },
    succeeded() {
      if (streak === null) return;
      log.info({ failures: streak.failures, failedForMs: Math.round(performance.now() - streak.since) }, messages.recovered);
      streak = null;
    },
  };
}
