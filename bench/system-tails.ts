import { countWorkMessages } from './environment';
import { createSystem, fill, missingRows, paced, saturate, type PacedTail } from './system-phases';
import type { Track } from './worker';

export interface TailSettings {
  rate: number;
  /** Each quiet and backlog measurement. */
  seconds: number;
  /** A freshly started ingest is measured over its first this-many seconds, then as long again. */
  freshSeconds: number;
  burstSeconds: number;
  afterBurstSeconds: number;
  backlog: number;
  /** Pause between filling the backlog and measuring under it, so (c) is not simply "after a burst". */
  settleSeconds: number;
}

export type Tail = PacedTail;

export interface TailRound {
  /** (d) a new ingest loaded the moment /readyz says it is ready with a broker, and the same process right after. */
  freshIngest: { first: Tail; next: Tail };
  /** (a) no backlog, no worker, after the warm-up that (d) gave. */
  quiet: Tail;
  /** (c) with the work queues holding at least `backlog` messages and no worker. */
  underBacklog: Tail & { queued: number };
  /** (b) right after a saturation burst (closed loop, 64 connections), which leaves the outbox relay and Postgres catching up. */
  afterBurst: Tail & { burstAcksPerSecond: number };
  missing: number;
}

/** One round of the ack-tail measurements, in a fresh database and queue prefix, with no worker: (d), (a), (c), (b). */
export async function measureTails(track: Track, settings: TailSettings, log: (line: string) => void): Promise<TailRound> {
  const system = await createSystem(track);
  try {
    const ingest = await system.startIngest();
    const first = await paced(system, settings.rate, settings.freshSeconds, ingest);
    const next = await paced(system, settings.rate, settings.freshSeconds, ingest);
    const quiet = await paced(system, settings.rate, settings.seconds);
    log(`  filling the work queues to ${settings.backlog} messages`);
    await fill(system, settings.backlog);
    await new Promise((resolve) => setTimeout(resolve, settings.settleSeconds * 1000));
    const queued = (await countWorkMessages(system.env.amqpUrl, system.env.topology)) ?? 0;
    const underBacklog = { ...(await paced(system, settings.rate, settings.seconds)), queued };
    log(`  saturating for ${settings.burstSeconds} s`);
    const burst = await saturate(system, settings.burstSeconds);
    const afterBurst = { ...(await paced(system, settings.rate, settings.afterBurstSeconds)), burstAcksPerSecond: burst.acksPerSecond };
    return { freshIngest: { first, next }, quiet, underBacklog, afterBurst, missing: await missingRows(system.env.sql, system.ackedIds) };
  } finally {
    await system.release();
  }
}
