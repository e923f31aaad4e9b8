import type { Config } from '../config';
import { transaction, type Sql } from '../db/client';
import { classifyPostgresError } from '../db/postgres-errors';
import { WagateError, type ErrorCode } from '../errors';
import { failpoint } from '../failpoints';
import { RESHARD_LOCK_WAIT_MS, withReshardLock } from '../ledger/reshard-lock';
import { storedShardCount } from '../ledger/shard-count';
import { recordedRetryDelays } from '../ledger/shard-topology';
import { withReshardClaim, type ReshardClaim } from '../queue/reshard-claim';
import { checkBrokerMatches, consumedQueues, moveToShardCount, stagedMessages } from '../queue/reshard-queues';
import { topologyNames, type TopologyOptions } from '../queue/topology';

export interface ReshardDeps {
  sql: Sql;
  amqpUrl: string;
  /** The group's names and tiers; `shards` is the count assumed when none is stored yet. */
  topology: TopologyOptions;
  livenessTimeoutMs: number;
  /** How long the workers have to finish their messages in hand and release their shards. */
  releaseTimeoutMs: number;
  progress(line: string): void;
  /**
   * Aborted by an operator's Ctrl-C or a SIGTERM: before the move the run resumes the workers
   * and ends, nothing moved; during it, it ends at the next message with the workers paused,
   * for a rerun to finish. Without it, the workers of the group stayed paused, unexplained.
   */
  stop?: AbortSignal;
}

export interface ReshardReport {
  from: number;
  to: number;
  /** Messages put on the new shards (on a rerun, with those an interrupted run had gathered), and retries re-addressed in their tiers. */
  moved: number;
  retriesReaddressed: number;
}

const RELEASE_POLL_MS = 250;
/** How often, in messages put on the new shards, the move asks whether it still holds its Postgres lock. */
const LOCK_CHECK_EVERY = 100;

/** The reshard command's settings: workers get their liveness timeout plus their drain timeout to release. */
export function reshardDepsFromConfig(config: Config, sql: Sql): ReshardDeps {
  return {
    sql,
    amqpUrl: config.AMQP_URL,
    topology: { prefix: config.QUEUE_PREFIX, deliveryLimit: config.QUEUE_DELIVERY_LIMIT, retryDelaysMs: config.RETRY_DELAYS_MS, shards: config.WORK_SHARDS },
    livenessTimeoutMs: config.WORKER_LIVENESS_TIMEOUT_MS,
    releaseTimeoutMs: config.WORKER_LIVENESS_TIMEOUT_MS + config.WORKER_DRAIN_TIMEOUT_MS,
    progress: (line) => process.stderr.write(`wagate reshard: ${line}\n`),
  };
}

/**
 * Changes the shard count, keeping each sender's order. Every sender's messages sit in one
 * old shard, in order. The workers are paused (each finishes the messages it holds and
 * releases its shards); then every old shard is emptied, in turn and in queue order, into
 * one staging queue, and the staging queue is emptied in order into the new shards. A
 * sender's messages therefore keep their order, and only then does the new count become
 * the stored one and the workers resume. Retries waiting in a tier are re-addressed to
 * their sender's new shard (their wait starts again). Surplus old queues are unbound,
 * emptied and deleted.
 *
 * Order is guaranteed for what was queued when the move began. Ingests still running with
 * the old WORK_SHARDS meanwhile publish to old shards; workers forward such a message to its
 * sender's shard, so nothing is lost, but its order against the same sender's other messages
 * holds only if no ingest publishes during the move: the README's procedure stops them for it.
 */
export async function reshard(deps: ReshardDeps, to: number): Promise<ReshardReport> {
  // One run at a time per group: a second run beside a first would pause, find the first's
  // consumers on the old shards and resume the workers in the middle of its move. The broker's
  // claim holds a run's place even when its Postgres lock ends mid-move (reshard-claim.ts).
  const run = await withReshardLock(deps.sql, deps.topology.prefix, 'reshard', (lock) =>
    withReshardClaim(deps.amqpUrl, topologyNames(deps.topology), (claim) => reshardHeld(deps, to, { lock, claim })));
  if (!run.taken) {
    throw new WagateError('OPERATION_REFUSED',
      `another wagate reshard of "${deps.topology.prefix}" is running (it holds the group's reshard lock in Postgres; ingests and workers declaring their queues hold it too, for milliseconds, and were waited for ${RESHARD_LOCK_WAIT_MS / 1000} s); let it finish, or stop it and run the command again`);
  }
  return run.value;
}

/** What makes a run the group's only one: the connection whose transaction holds the reshard lock, and the broker's claim. */
interface Exclusive {
  lock: Sql;
  claim: ReshardClaim;
}

async function reshardHeld(deps: ReshardDeps, to: number, exclusive: Exclusive): Promise<ReshardReport> {
  const { sql } = deps;
  const prefix = deps.topology.prefix;
  const from = (await storedShardCount(sql, prefix)) ?? deps.topology.shards;
  const gatheredFor = await interruptedTarget(sql, prefix);
  if (gatheredFor !== null && gatheredFor !== to) {
    throw new WagateError('OPERATION_REFUSED',
      `an interrupted reshard of "${prefix}" to ${gatheredFor} shards had already gathered the old shards' messages and begun to distribute them; finish it first: wagate reshard --to ${gatheredFor}`);
  }
  // Before anything is paused: a wrong AMQP_URL, a broker away, or a shell with other retry
  // delays or delivery limit than the workers' stopped every worker of the group, and the
  // command failed only once they had all let go of their shards.
  await checkBrokerMatches(deps.amqpUrl, topologyNames({ ...deps.topology, shards: from }));
  // Read before the pause, so that a failure leaves the workers as they were, and again once they
  // have let go: a worker that connected just before the lock may record its tiers after the first read.
  const earlier = (delays: number[]) => delays.filter((delayMs) => !deps.topology.retryDelaysMs.includes(delayMs));
  const earlierBeforePause = earlier(await recordedRetryDelays(sql, prefix));
  const stopped = () => `stopped by ${(deps.stop?.reason as Error | undefined)?.message ?? 'a signal'}`;
  if (deps.stop?.aborted) throw new WagateError('OPERATION_REFUSED', `${stopped()} before anything was paused; the workers were left as they were`);
  await sql`INSERT INTO work_shard_settings (queue_prefix, shard_count, paused) VALUES (${prefix}, ${from}, true)
            ON CONFLICT (queue_prefix) DO UPDATE SET paused = true, updated_at = now()`;
  deps.progress(`paused the workers of "${prefix}"; waiting for them to release ${from} shard(s)`);
  const refuse = async (why: string, whom: string, code: ErrorCode = 'OPERATION_REFUSED'): Promise<never> => {
    // Half moved: most messages wait in staging, some are on the new shards already. Resumed
    // on the old count, the workers would take those out of order; the group stays paused.
    const then = whom ? `stop ${whom}, then run` : 'run';
    if (gatheredFor !== null) {
      throw new WagateError('OPERATION_REFUSED',
        `${why}; the interrupted move to ${gatheredFor} shards is not finished, so the workers stay paused: ${then} wagate reshard --to ${gatheredFor} again`);
    }
    // Interrupted while it gathered: the senders' earliest messages wait in staging, their
    // later ones on the old shards, which resumed workers would take first.
    const staged = await stagedMessages(deps.amqpUrl, topologyNames({ ...deps.topology, shards: to }))
      .catch((error: Error) => stillPaused(Object.assign(error, { message: `${why}; then its staging queue could not be read: ${error.message}` })));
    if (staged > 0) {
      throw new WagateError('OPERATION_REFUSED',
        `${why}; an interrupted reshard left ${staged} message(s) in its staging queue, so the workers stay paused: ${then} wagate reshard again (to any count)`);
    }
    await sql`UPDATE work_shard_settings SET paused = false, updated_at = now() WHERE queue_prefix = ${prefix}`.catch((error: Error) => {
      throw new WagateError(postgresCode(error),
        `${why}; nothing was moved, but the workers could not be resumed (${error.message}), so they stay paused: once Postgres answers, run wagate reshard --to ${to} again (or --to ${from}, to keep the count), which resumes them`, { cause: error });
    });
    throw new WagateError(code, `${why}; nothing was moved and the workers resume${whom ? `. Try again, or stop ${whom} first` : ''}`);
  };
  /**
   * A failure once the workers are paused (the broker lost, say): they stay so, since what is
   * in staging cannot be told; the error says so, and that a rerun finishes and resumes them.
   */
  const stillPaused = (error: Error, code: ErrorCode = 'BROKER_UNAVAILABLE'): never => {
    throw new WagateError(error instanceof WagateError ? error.code : code,
      `${error.message}; the workers of "${prefix}" stay paused: ${error.message.startsWith(stopped()) ? '' : 'once that is mended, '}run wagate reshard --to ${to} again, which finishes the move and resumes them`, { cause: error });
  };
  const held = await shardsStillHeld(deps)
    .catch((error: Error) => refuse(`the workers' release could not be read (${error.message})`, 'what keeps Postgres from answering', postgresCode(error)));
  if (deps.stop?.aborted) await refuse(stopped(), '');
  if (held > 0) await refuse(`${held} shard(s) are still held by live workers after ${deps.releaseTimeoutMs} ms`, 'the workers that hold shards');
  const oldTopology = topologyNames({ ...deps.topology, shards: from });
  // A worker whose heartbeat expired (frozen, or cut off from Postgres but not from the broker)
  // holds no shard on record but may still consume one; the move would wait behind it for good.
  const consumed = await consumedQueues(deps.amqpUrl, oldTopology.shards.map((shard) => shard.queue)).catch(stillPaused);
  if (consumed.length > 0) {
    const which = consumed.map(({ queue, consumers }) => `${queue} (${consumers})`).join(', ');
    await refuse(`no live worker holds a shard, but these shard queues still have consumers: ${which}`, 'the worker processes still connected to the broker (kubectl scale the worker Deployment to 0)');
  }
  const newTopology = topologyNames({ ...deps.topology, shards: to });
  const recordedAgain = await recordedRetryDelays(sql, prefix).catch((error: Error) => refuse(`the retry tiers recorded could not be read again (${error.message})`, 'what keeps Postgres from answering'));
  const earlierDelays = [...new Set([...earlierBeforePause, ...earlier(recordedAgain)])];
  const earlierTiers = topologyNames({ ...deps.topology, retryDelaysMs: earlierDelays }).retryTiers;
  // A test holds the run here, the workers paused and nothing moved, to connect a process meanwhile.
  await failpoint('reshard.before-move');
  let gatheringChecks = 0;
  let stoppedBeforeGathering = false;
  if (deps.stop?.aborted) await refuse(stopped(), '');
  await assertStillExclusive(exclusive, prefix).catch(stillPaused);
  const moved = await moveToShardCount(deps.amqpUrl, oldTopology, newTopology, {
    gathered: gatheredFor === to,
    earlierTiers,
    // Between two old shards: a rerun gathers the rest behind what is in staging, in order.
    stopRequested: async () => {
      gatheringChecks += 1;
      // A test holds the gathering here, after the first old shard, to signal it.
      if (gatheringChecks === 2) await failpoint('reshard.gathering');
      if (!deps.stop?.aborted) return null;
      // Before the first old shard: nothing gathered, so the workers can resume (refuse, below).
      stoppedBeforeGathering = gatheringChecks === 1;
      return `${stopped()} while gathering the old shards`;
    },
    onGathered: async () => void (await sql`UPDATE work_shard_settings SET gathered_for = ${to}, updated_at = now() WHERE queue_prefix = ${prefix}`),
    afterDistributed: async (done, total) => {
      // A test holds the move here, a quarter of the way through, to kill it and run it again.
      if (done === Math.ceil(total / 4)) await failpoint('reshard.distributing');
      if (deps.stop?.aborted) throw new WagateError('OPERATION_REFUSED', `${stopped()} during the move`);
      // Stopped with the message in hand unacked: it goes back to staging, for the rerun.
      if (!exclusive.claim.held() || done % LOCK_CHECK_EVERY === 0) await assertStillExclusive(exclusive, prefix);
    },
    progress: deps.progress,
  }).catch((error: Error) => (stoppedBeforeGathering ? refuse(stopped(), '') : stillPaused(error)));
  await assertStillExclusive(exclusive, prefix).catch(stillPaused);
  // Every message is on the new shards by now: resumed on the old count, the workers would
  // read the wrong queues, so a failure here leaves them paused for a rerun to store the count.
  await recordCount(sql, prefix, to).catch((error: Error) =>
    stillPaused(new Error(`the messages are on ${to} shards, but the count could not be stored (${error.message})`, { cause: error }), postgresCode(error)));
  deps.progress(`stored ${to} shards; the workers resume`);
  return { from, to, ...moved };
}

/**
 * The lock's transaction is still open: a Postgres restart or a proxy's reset ends it, and the
 * lock with it, without a word, and ingests and workers would then declare queues mid-move.
 * And the broker's claim is still held: without it a second run could move beside this one.
 */
async function assertStillExclusive({ lock, claim }: Exclusive, prefix: string): Promise<void> {
  if (!claim.held()) {
    throw new WagateError('OPERATION_REFUSED', `the reshard of "${prefix}" lost its claim on the broker (its connection closed), so a second run could move beside it`);
  }
  try {
    await lock`SELECT 1`;
  } catch (error) {
    throw new WagateError('OPERATION_REFUSED',
      `the reshard of "${prefix}" lost its lock in Postgres (${(error as Error).message}), so processes could declare queues beside its move`, { cause: error });
  }
}

/** Waits for the workers to release every shard; answers how many live workers still hold at the deadline (0: released). */
async function shardsStillHeld(deps: ReshardDeps): Promise<number> {
  const deadline = Date.now() + deps.releaseTimeoutMs;
  const liveness = `${deps.livenessTimeoutMs} milliseconds`;
  for (;;) {
    const held = await deps.sql<{ held: number }[]>`
      SELECT count(*)::integer AS held FROM work_shard_owners o
      WHERE o.queue_prefix = ${deps.topology.prefix} AND o.owner IS NOT NULL AND EXISTS (
        SELECT 1 FROM worker_members m WHERE m.queue_prefix = o.queue_prefix AND m.member_id = o.owner
        AND m.heartbeat_at > now() - ${liveness}::interval)`.then(([row]) => row!.held, (error: unknown) => {
      // A reset or a failover during a wait of minutes is waited out, as the workers do; a
      // statement Postgres refuses, or one still failing at the deadline, ends the wait.
      if (classifyPostgresError(error) === null || Date.now() > deadline) throw error;
      return null;
    });
    if (held === 0 || (held !== null && Date.now() > deadline) || deps.stop?.aborted) return held ?? 0;
    await new Promise((resolve) => setTimeout(resolve, RELEASE_POLL_MS));
  }
}

/** The code of a Postgres failure: passing (down, too slow, a deadlock) or, for anything else, INTERNAL. */
function postgresCode(error: unknown): ErrorCode {
  return classifyPostgresError(error) ?? 'INTERNAL';
}

/** The settings row first: a take locks it before its owner row (MembershipStore.acquire), so the other order could deadlock. */
async function recordCount(sql: Sql, prefix: string, to: number): Promise<void> {
  await transaction(sql, async (tx) => {
    await tx`UPDATE work_shard_settings SET shard_count = ${to}, paused = false, gathered_for = NULL, updated_at = now() WHERE queue_prefix = ${prefix}`;
    await tx`DELETE FROM work_shard_owners WHERE queue_prefix = ${prefix} AND shard >= ${to}`;
    await tx`INSERT INTO work_shard_owners (queue_prefix, shard)
             SELECT ${prefix}, shard FROM generate_series(0, ${to - 1}::integer) AS shard
             ON CONFLICT (queue_prefix, shard) DO UPDATE SET owner = NULL, changed_at = now()`;
  });
}

/** The count an interrupted reshard of this group was moving to once it had gathered the old shards, or null. */
async function interruptedTarget(sql: Sql, prefix: string): Promise<number | null> {
  const [row] = await sql<{ gathered_for: number | null }[]>`SELECT gathered_for FROM work_shard_settings WHERE queue_prefix = ${prefix}`;
  return row?.gathered_for ?? null;
}
