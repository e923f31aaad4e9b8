import type { Logger } from '../telemetry/logger';

/**
 * How many of a statement's longest healthy waits (a connect and a statement timeout) pass, at
 * least, before its connection is taken for dead. Postgres ends every statement at
 * statement_timeout and a connection attempt fails at its connect timeout, so while the link
 * works an answer comes, even an error; the rest of the margin is the pool's queue.
 */
const HEALTHY_WAITS_TO_STALL = 4;

/**
 * The wait after which a statement still unanswered means a dead connection, in ms: the
 * configured one (DB_STALL_LIMIT_MS), and never less than four healthy waits.
 */
export function stallLimitMs(connectTimeoutSeconds: number, statementTimeoutMs: number, configuredMs: number): number {
  return Math.max(configuredMs, HEALTHY_WAITS_TO_STALL * (connectTimeoutSeconds * 1000 + statementTimeoutMs));
}

export interface Stall {
  /** What the process waits for, as `time` was told. */
  operation: string;
  waitingMs: number;
}

/**
 * Postgres work a process cannot do without, timed while it waits. A connection whose peer
 * vanished without a reset (a failover that moves the address, a dropped route, a node lost)
 * never answers: the statement and connect timeouts do not apply to it, and TCP gives up after
 * its retransmissions, about 15 minutes on Linux. postgres.js cannot be given a shorter one
 * (Node has no TCP_USER_TIMEOUT), so the process is told instead, and its liveness fails.
 */
export interface StallWatch {
  time<T>(operation: string, work: () => Promise<T>): Promise<T>;
  /** The operation waiting longest, if past `limitMs`. */
  stalled(): Stall | null;
}

/** The watch's `time`, or one that only runs the work where there is no watch (tests, tools). */
export function timerOf(watch: StallWatch | undefined): StallWatch['time'] {
  return watch ? watch.time : (_operation, work) => work();
}

export function createStallWatch(limitMs: number): StallWatch {
  const waiting = new Set<{ operation: string; since: number }>();
  return {
    async time(operation, work) {
      const entry = { operation, since: performance.now() };
      waiting.add(entry);
      try {
        return await work();
      } finally {
        waiting.delete(entry);
      }
    },
    stalled() {
      // A Set keeps insertion order: the first entry waits longest.
      const [oldest] = waiting;
      const waitingMs = oldest ? performance.now() - oldest.since : 0;
      return oldest && waitingMs > limitMs ? { operation: oldest.operation, waitingMs: Math.round(waitingMs) } : null;
    },
  };
}

export interface Liveness {
  alive: boolean;
  body: Record<string, unknown>;
}

/**
 * A process's liveness from its stall watch: it fails while a statement waits past the limit,
 * so that the process is restarted and its connections with it. Says so in the log once, and
 * once again when the answer came after all. `consequence` says what the restart brings.
 */
export function stallLiveness(watch: StallWatch, log: Logger, consequence: string): () => Liveness {
  let told = false;
  return () => {
    const stall = watch.stalled();
    if (stall && !told) {
      log.error(stall, `Postgres has not answered a statement long past its statement and connect timeouts: its connection is likely dead without a reset (a failover that moved the address, a dropped route). /healthz fails from now on, so that the pod is restarted and ${consequence}`);
    }
    if (!stall && told) log.info('the statement Postgres had left unanswered has its answer; /healthz passes again');
    told = stall !== null;
    return stall ? { alive: false, body: { status: 'stalled', waitingFor: stall.operation, waitingMs: stall.waitingMs } } : { alive: true, body: { status: 'ok' } };
  };
}
