import { createDatabase } from '../../src/db/client';
import { createMetrics } from '../../src/telemetry/metrics';
import { createLogger } from '../../src/telemetry/logger';
import { createMembershipStore, type MembershipStore } from '../../src/worker/membership-store';
import { assignShards } from '../../src/worker/shard-assignment';
import { createShardCoordinator, type CoordinatorDeps } from '../../src/worker/shard-coordinator';
import { settleWithin } from '../../src/settle-within';
import { counterValue } from '../support/in-process';
import { waitFor } from '../support/wait';
import { createTestDatabase, holdInTransaction, stallHeartbeats, type TestDatabase } from '../support/database';

const SHARDS = 2;
const HEARTBEAT_MS = 200;
// The lowest liveness the configuration allows: three heartbeats.
const LIVENESS_MS = 3 * HEARTBEAT_MS;
const PREFIX = 'wagate-takeover';
/**
 * For the tests that watch a worker stay live over several liveness timeouts: six heartbeats
 * a liveness, so that one heartbeat late on a busy machine (a slow UPDATE, a GC pause) does not
 * end it, which at the lowest liveness a single late heartbeat would.
 */
const PATIENT = { heartbeatMs: 250, livenessTimeoutMs: 1500 };

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

/**
 * The broker side of a worker, reduced to what ownership needs: a channel, and which shards it
 * consumes. `finishing` holds a shard's release until it settles (messages in hand still running).
 */
function consumerOfShards(finishing: Map<number, Promise<void>> = new Map()) {
  const subscribed = new Set<number>();
  return {
    hasChannel: () => true,
    isSubscribed: (shard: number) => subscribed.has(shard),
    subscribe: async (shard: number) => Boolean(subscribed.add(shard)),
    release: async (shard: number) => {
      await finishing.get(shard);
      subscribed.delete(shard);
    },
    relinquish: async (shard: number) => void subscribed.delete(shard),
  };
}

function coordinatorFor(memberId: string, store: MembershipStore, finishing?: Map<number, Promise<void>>, overrides: Partial<CoordinatorDeps> = {}) {
  return createShardCoordinator({
    store,
    consumer: consumerOfShards(finishing),
    memberId,
    shardCount: SHARDS,
    prefetchFor: () => 10,
    heartbeatMs: HEARTBEAT_MS,
    livenessTimeoutMs: LIVENESS_MS,
    log: createLogger('silent', 'test-worker'),
    metrics: createMetrics('worker', { processMetrics: false }),
    ...overrides,
  });
}

/** Holds a member's row locked in a transaction of its own, so that its heartbeats wait, until released. */
async function lockMemberRow(prefix: string, memberId: string): Promise<{ release(): Promise<void> }> {
  const lock = stallHeartbeats(db.sql, prefix, memberId);
  await lock.held;
  return lock;
}

/** How many statements of this database wait on a lock. */
async function lockWaiters(): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
  return row!.n;
}

describe('taking over a dead worker\'s shards at the lowest liveness the configuration allows', () => {
  it('happens although every tick comes a little later than the heartbeat', async () => {
    const store = createMembershipStore({ sql: db.sql }, PREFIX, LIVENESS_MS);
    // A worker that held every shard, then died: its heartbeat stops.
    await store.heartbeat('dead-worker');
    for (let shard = 0; shard < SHARDS; shard += 1) expect(await store.acquire('dead-worker', shard, false)).toBe(true);

    const coordinator = coordinatorFor('survivor', store);
    // Each tick a few milliseconds past the heartbeat, as setInterval's drift and a busy machine
    // make them: sight of the group is continuous, and the dead worker's shards must move.
    let ticks = 0;
    while (coordinator.owned().length < SHARDS && ticks < 40) {
      await coordinator.tick();
      ticks += 1;
      await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_MS + 5));
    }
    expect(coordinator.owned()).toEqual([0, 1]);
    const rows = await db.sql<{ owner: string }[]>`SELECT owner FROM work_shard_owners WHERE queue_prefix = ${PREFIX} ORDER BY shard`;
    expect(rows.map((row) => row.owner)).toEqual(['survivor', 'survivor']);
  }, 30_000);

  it('happens when each round, as the worker runs them, takes longer than a heartbeat', async () => {
    const prefix = `${PREFIX}-slow-rounds`;
    // Eight heartbeats a liveness: reads further apart than 2.67 heartbeats are a gap.
    const timing = { heartbeatMs: 600, livenessTimeoutMs: 4800 };
    const store = createMembershipStore({ sql: db.sql }, prefix, timing.livenessTimeoutMs);
    await store.heartbeat('dead-worker');
    for (let shard = 0; shard < SHARDS; shard += 1) expect(await store.acquire('dead-worker', shard, false)).toBe(true);

    // A Postgres slow enough that the heartbeat and the read take 2.1 heartbeats together, short
    // of a gap. Rounds that waited for the heartbeat's next turn after such a round ran three
    // heartbeats apart: every read looked like a gap in sight of the group, and the dead
    // worker's shards never moved.
    const slowly = <T>(work: () => Promise<T>) => new Promise((resolve) => setTimeout(resolve, 1.05 * timing.heartbeatMs)).then(work);
    const slowStore: MembershipStore = {
      ...store,
      heartbeat: (memberId, join) => slowly(() => store.heartbeat(memberId, join)),
      read: () => slowly(() => store.read()),
    };
    const coordinator = coordinatorFor('survivor', slowStore, undefined, timing);
    coordinator.start();
    try {
      await waitFor('the survivor to take the dead worker\'s shards', () => coordinator.owned().length === SHARDS, 6 * timing.livenessTimeoutMs);
    } finally {
      await coordinator.stop(2000);
    }
  }, 90_000);
});

/**
 * A group whose shard 0 belongs to `owner`, who has held it and not heartbeat for an hour. The
 * liveness timeout is far longer than a test, so that only the stored times decide.
 */
async function shardOfExpiredOwner(prefix: string, owner: string): Promise<MembershipStore> {
  const store = createMembershipStore({ sql: db.sql }, prefix, 60_000);
  await store.heartbeat(owner);
  expect(await store.acquire(owner, 0, false)).toBe(true);
  await db.sql`UPDATE work_shard_owners SET changed_at = now() - interval '1 hour' WHERE queue_prefix = ${prefix}`;
  await db.sql`UPDATE worker_members SET heartbeat_at = now() - interval '1 hour' WHERE queue_prefix = ${prefix} AND member_id = ${owner}`;
  return store;
}

/** A take of shard 0 begun while `held` keeps a write open: it waits on that write (or ends), which is then committed. */
async function takeWhileHeld(store: MembershipStore, held: { release(): Promise<void> }): Promise<boolean> {
  let settled = false;
  const taking = store.acquire('taker', 0, true).finally(() => (settled = true));
  try {
    await waitFor('the take to wait on the open write (or to end)', async () => settled || (await lockWaiters()) > 0);
  } finally {
    await held.release();
  }
  return taking;
}

async function ownerOfShard0(prefix: string): Promise<string | null> {
  const [row] = await db.sql<{ owner: string | null }[]>`SELECT owner FROM work_shard_owners WHERE queue_prefix = ${prefix} AND shard = 0`;
  return row!.owner;
}

describe('a take that meets the owner\'s heartbeat under way', () => {
  it('waits for the heartbeat, and takes nothing when it renews the owner that looked expired', async () => {
    const prefix = `${PREFIX}-straddle`;
    const store = await shardOfExpiredOwner(prefix, 'owner');
    // The owner's renewing heartbeat has run and not yet committed when the take reads the group.
    const beat = holdInTransaction(db.sql, (tx) => tx`
      UPDATE worker_members SET heartbeat_at = clock_timestamp() WHERE queue_prefix = ${prefix} AND member_id = 'owner'`);
    await beat.held;
    expect(await takeWhileHeld(store, beat)).toBe(false);
    expect(await ownerOfShard0(prefix)).toBe('owner');
  }, 30_000);

  it('takes the shard of an owner whose heartbeats stall on a lock, once they have expired', async () => {
    const prefix = `${PREFIX}-stalled-owner`;
    const store = await shardOfExpiredOwner(prefix, 'owner');
    const stall = stallHeartbeats(db.sql, prefix, 'owner');
    await stall.held;
    const beating = store.heartbeat('owner', false);
    try {
      await waitFor('the owner\'s heartbeat to wait on the lock', async () => (await lockWaiters()) > 0);
      expect(await store.acquire('taker', 0, true)).toBe(true);
    } finally {
      await stall.release();
    }
    await beating;
  }, 30_000);
});

describe('a heartbeat that forgets a long-silent member', () => {
  it('goes through while that member\'s row is locked, and forgets it on a later heartbeat', async () => {
    const prefix = `${PREFIX}-forget`;
    const store = createMembershipStore({ sql: db.sql }, prefix, LIVENESS_MS);
    await store.heartbeat('ghost');
    await db.sql`UPDATE worker_members SET heartbeat_at = now() - interval '1 hour' WHERE queue_prefix = ${prefix} AND member_id = 'ghost'`;
    // A take of the ghost's shard share-locks its row: a heartbeat of another member that waited
    // to delete the row would stop that member's heartbeats, and with them its lease and its takes.
    const lock = stallHeartbeats(db.sql, prefix, 'ghost');
    await lock.held;
    try {
      expect(await settleWithin(store.heartbeat('live'), 5000, 'hung')).toBeUndefined();
    } finally {
      await lock.release();
    }
    const members = async () => (await db.sql<{ member_id: string }[]>`
      SELECT member_id FROM worker_members WHERE queue_prefix = ${prefix} ORDER BY member_id`).map((row) => row.member_id);
    expect(await members()).toEqual(['ghost', 'live']);
    await store.heartbeat('live');
    expect(await members()).toEqual(['live']);
  }, 30_000);
});

describe('a take that waits while a newly joined worker takes the shard', () => {
  it('leaves the shard to that worker, whose member row it cannot see', async () => {
    const prefix = `${PREFIX}-newcomer`;
    const store = await shardOfExpiredOwner(prefix, 'dead-owner');
    // A newcomer's take of the dead owner's shard is under way, its member row not yet committed.
    const newcomer = holdInTransaction(db.sql, (tx) => tx`
      WITH joined AS (INSERT INTO worker_members (queue_prefix, member_id, heartbeat_at) VALUES (${prefix}, 'newcomer', clock_timestamp()))
      UPDATE work_shard_owners SET owner = 'newcomer', changed_at = now() WHERE queue_prefix = ${prefix} AND shard = 0`);
    await newcomer.held;
    expect(await takeWhileHeld(store, newcomer)).toBe(false);
    expect(await ownerOfShard0(prefix)).toBe('newcomer');
  }, 30_000);
});

describe('a shard recorded as a live worker\'s that it does not hold', () => {
  it('is released by that worker, so that the worker it belongs to can take it', async () => {
    const prefix = `${PREFIX}-stray`;
    const store = createMembershipStore({ sql: db.sql }, prefix, LIVENESS_MS);
    const a = coordinatorFor('worker-a', store);
    const [shardOfC] = assignShards(SHARDS, ['worker-a', 'worker-c']).flatMap((target, shard) => (target === 'worker-c' ? [shard] : []));
    // worker-a's take of worker-c's shard committed, but the answer never reached worker-a.
    await store.heartbeat('worker-c');
    expect(await store.acquire('worker-a', shardOfC!, false)).toBe(true);
    await waitFor('worker-a to clear the record of the shard it does not hold', async () => {
      await store.heartbeat('worker-c');
      await a.tick();
      const [row] = await db.sql<{ owner: string | null }[]>`
        SELECT owner FROM work_shard_owners WHERE queue_prefix = ${prefix} AND shard = ${shardOfC!}`;
      return row!.owner === null;
    }, 20_000);
    expect(a.owned()).not.toContain(shardOfC);
  }, 30_000);
});

describe('a take racing a reshard\'s pause', () => {
  it('waits for a pause under way and then takes nothing, and takes nothing once paused', async () => {
    const prefix = `${PREFIX}-pause`;
    const store = createMembershipStore({ sql: db.sql }, prefix, LIVENESS_MS);
    await db.sql`INSERT INTO work_shard_settings (queue_prefix, shard_count) VALUES (${prefix}, ${SHARDS})`;
    await store.heartbeat('worker-a');

    // The reshard's pause, not yet committed, while a take that read "not paused" goes ahead.
    let commitPause!: () => void;
    const pauseMayCommit = new Promise<void>((resolve) => (commitPause = resolve));
    let paused!: () => void;
    const pauseWritten = new Promise<void>((resolve) => (paused = resolve));
    const pause = db.sql.begin(async (tx) => {
      await tx`UPDATE work_shard_settings SET paused = true WHERE queue_prefix = ${prefix}`;
      paused();
      await pauseMayCommit;
    });
    await pauseWritten;
    let answered = false;
    const take = store.acquire('worker-a', 0, false).then((taken) => {
      answered = true;
      return taken;
    });
    // The take waits on the settings row: it answers only after the pause commits.
    await waitFor('the take to wait for the pause\'s lock', async () => {
      const [row] = await db.sql<{ n: number }[]>`
        SELECT count(*)::integer AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
      return row!.n > 0;
    });
    expect(answered).toBe(false);
    commitPause();
    await pause;
    expect(await take).toBe(false);
    expect(await store.acquire('worker-a', 1, false)).toBe(false);
    const owners = await db.sql<{ owner: string | null }[]>`SELECT owner FROM work_shard_owners WHERE queue_prefix = ${prefix}`;
    expect(owners.filter((row) => row.owner !== null)).toEqual([]);

    await db.sql`UPDATE work_shard_settings SET paused = false WHERE queue_prefix = ${prefix}`;
    expect(await store.acquire('worker-a', 0, false)).toBe(true);
  }, 30_000);
});

describe('a take racing a reshard to fewer shards', () => {
  it('takes no shard beyond the count stored, though its worker still counts more', async () => {
    const prefix = `${PREFIX}-shrunk`;
    const store = createMembershipStore({ sql: db.sql }, prefix, LIVENESS_MS);
    await db.sql`INSERT INTO work_shard_settings (queue_prefix, shard_count) VALUES (${prefix}, 4)`;
    await store.heartbeat('worker-a');
    expect(await store.acquire('worker-a', 3, false)).toBe(true);
    await store.release('worker-a', [3]);

    // A reshard to 2 finished between the worker's read of the group and its take of shard 3.
    await db.sql`UPDATE work_shard_settings SET shard_count = 2 WHERE queue_prefix = ${prefix}`;
    await db.sql`DELETE FROM work_shard_owners WHERE queue_prefix = ${prefix} AND shard >= 2`;
    expect(await store.acquire('worker-a', 3, false)).toBe(false);
    expect(await store.acquire('worker-a', 2, false)).toBe(false);
    const beyond = await db.sql`SELECT shard FROM work_shard_owners WHERE queue_prefix = ${prefix} AND shard >= 2`;
    expect(beyond).toHaveLength(0);
    expect(await store.acquire('worker-a', 1, false)).toBe(true);
  }, 30_000);
});

describe('stopping a worker whose tick hangs on Postgres', () => {
  it('releases its shards within the drain timeout instead of waiting for the tick', async () => {
    const prefix = `${PREFIX}-stop`;
    // A pool of its own, as a worker has: the statements that wait on the lock below (the tick's
    // heartbeat, the stop's leaving mark and leave) must not take the connections the test reads with.
    const workerSql = createDatabase({ url: db.url, maxConnections: 8, connectTimeoutSeconds: 5, statementTimeoutMs: 30000, applicationName: 'wagate-test-worker' });
    const store = createMembershipStore({ sql: workerSql }, prefix, LIVENESS_MS);
    const coordinator = coordinatorFor('stopping-worker', store);
    // A round waits for a take a heartbeat at most; the take goes on after it.
    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === 2));
    expect(coordinator.owned()).toEqual([0, 1]);

    // The member row locked: the next tick's heartbeat waits for as long as the lock is held.
    const lock = await lockMemberRow(prefix, 'stopping-worker');
    try {
      void coordinator.tick();
      let stopped: boolean | undefined;
      void coordinator.stop(2_000).then((done) => (stopped = done));
      await waitFor('the stop to finish while the tick still hangs', () => stopped !== undefined, 10_000);
      expect(stopped).toBe(true);
      expect(coordinator.owned()).toEqual([]);
      const owners = await db.sql<{ owner: string | null }[]>`SELECT owner FROM work_shard_owners WHERE queue_prefix = ${prefix}`;
      expect(owners.map((row) => row.owner)).toEqual([null, null]);
    } finally {
      await lock.release();
      await workerSql.end();
    }
  }, 30_000);
});

describe('stopping a worker that cannot read who owns its shards', () => {
  /** A coordinator whose consumer only records how each shard was let go. */
  function recordingLetGo(memberId: string, store: MembershipStore) {
    const calls: string[] = [];
    const coordinator = coordinatorFor(memberId, store, undefined, {
      consumer: {
        ...consumerOfShards(),
        release: async (shard: number) => void calls.push(`release ${shard}`),
        relinquish: async (shard: number) => void calls.push(`relinquish ${shard}`),
      },
    });
    return { coordinator, calls };
  }

  it('relinquishes them (finishes what is under way, then lets go) rather than cancelling its consumers', async () => {
    const real = createMembershipStore({ sql: db.sql }, `${PREFIX}-unread`, LIVENESS_MS);
    let readHangs = false;
    // The owners' read hangs once the stop begins, as on a hung or starved Postgres.
    const store = { ...real, read: () => (readHangs ? new Promise<never>(() => undefined) : real.read()) };
    const { coordinator, calls } = recordingLetGo('unread-worker', store);
    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    readHangs = true;
    expect(await coordinator.stop(5_000)).toBe(true);
    expect(calls.sort()).toEqual(['relinquish 0', 'relinquish 1']);
  }, 30_000);

  it('releases them plainly when it reads that they are still its own', async () => {
    const { coordinator, calls } = recordingLetGo('read-worker', createMembershipStore({ sql: db.sql }, `${PREFIX}-read`, LIVENESS_MS));
    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    expect(await coordinator.stop(5_000)).toBe(true);
    expect(calls.sort()).toEqual(['release 0', 'release 1']);
  }, 30_000);
});

describe('stopping a worker whose release record fails once', () => {
  it('records it again before the deadline, hands the shards over and leaves the group, instead of waiting for its heartbeat to expire', async () => {
    const prefix = `${PREFIX}-release-blip`;
    const real = createMembershipStore({ sql: db.sql }, prefix, LIVENESS_MS);
    let failures = 0;
    // The first release record fails, as on a Postgres that went away for a moment.
    const store = { ...real, release: (memberId: string, shards: number[]) => (failures++ === 0 ? Promise.reject(new Error('Connection terminated unexpectedly')) : real.release(memberId, shards)) };
    const coordinator = coordinatorFor('blip-worker', store);
    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    expect(await coordinator.stop(5_000)).toBe(true);
    expect(failures).toBeGreaterThan(1);
    const view = await real.read();
    expect([...view.owners.values()].filter((owner) => owner === 'blip-worker')).toEqual([]);
    expect(view.liveMembers).not.toContain('blip-worker');
  }, 30_000);
});

describe('stopping while a take waits on Postgres', () => {
  it('gives the shard back once the take commits, instead of holding it after the stop', async () => {
    const prefix = `${PREFIX}-late-take`;
    const store = createMembershipStore({ sql: db.sql }, prefix, LIVENESS_MS);
    await db.sql`INSERT INTO work_shard_owners (queue_prefix, shard) VALUES (${prefix}, 0), (${prefix}, 1)`;
    const coordinator = coordinatorFor('late-taker', store);

    // The owner rows locked: the tick's takes wait until the stop has given up on them.
    let unlock!: () => void;
    const unlocked = new Promise<void>((resolve) => (unlock = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const lock = db.sql.begin(async (tx) => {
      await tx`SELECT 1 FROM work_shard_owners WHERE queue_prefix = ${prefix} FOR UPDATE`;
      locked();
      await unlocked;
    });
    try {
      await isLocked;
      void coordinator.tick();
      await waitFor('the takes to wait for the lock', async () => {
        const [row] = await db.sql<{ n: number }[]>`
          SELECT count(*)::integer AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
        return row!.n > 0;
      });
      expect(await coordinator.stop(500)).toBe(true);
    } finally {
      unlock();
      await lock;
    }
    await waitFor('the late takes to be given back', async () => {
      const owners = await db.sql<{ owner: string | null }[]>`SELECT owner FROM work_shard_owners WHERE queue_prefix = ${prefix}`;
      return owners.every((row) => row.owner === null);
    }, 10_000);
    expect(coordinator.owned()).toEqual([]);
  }, 30_000);
});

describe('a worker stopping with one shard slow to drain', () => {
  it('drops out of the assignment at once, so the shards it has released are taken while the slow one drains', async () => {
    const prefix = `${PREFIX}-leaving`;
    const store = createMembershipStore({ sql: db.sql }, prefix, PATIENT.livenessTimeoutMs);
    // The slow shard is the one the other worker would be given while both count as live: the
    // shard released quickly is then the stopping worker's own share, which nobody else targets.
    const [slow] = assignShards(SHARDS, ['worker-a', 'worker-b']).flatMap((target, shard) => (target === 'worker-b' ? [shard] : []));
    const quick = slow === 0 ? 1 : 0;
    let drained!: () => void;
    const a = coordinatorFor('worker-a', store, new Map([[slow!, new Promise<void>((resolve) => (drained = resolve))]]), PATIENT);
    await waitFor('worker-a to take every shard', async () => (await a.tick(), a.owned().length === 2));
    expect(a.owned()).toEqual([0, 1]);
    const b = coordinatorFor('worker-b', store, undefined, PATIENT);
    const stopped = a.stop(20_000);
    // worker-a heartbeats while it drains; worker-b takes the released shard while the other still drains.
    const beating = setInterval(() => void a.tick(), PATIENT.heartbeatMs);
    try {
      await waitFor('worker-b to take the released shard while worker-a still drains', async () => {
        await b.tick();
        return b.owned().includes(quick);
      }, 10_000);
      expect(a.owned()).toEqual([slow]);
      const owners = await db.sql<{ shard: number; owner: string | null }[]>`SELECT shard, owner FROM work_shard_owners WHERE queue_prefix = ${prefix} ORDER BY shard`;
      expect(Object.fromEntries(owners.map((row) => [row.shard, row.owner]))).toEqual({ [slow!]: 'worker-a', [quick]: 'worker-b' });
      drained();
      expect(await stopped).toBe(true);
      await waitFor('worker-b to take the drained shard too', async () => {
        await b.tick();
        return b.owned().length === SHARDS;
      }, 10_000);
      // A heartbeat of worker-a that lands after its leave does not bring it back into the group,
      // nor counts as one: nothing was renewed.
      await expect(store.heartbeat('worker-a', false)).rejects.toThrow(/member row is gone/);
      expect((await store.read()).liveMembers).toEqual(['worker-b']);
    } finally {
      clearInterval(beating);
      drained();
      await b.stop(5_000);
    }
  }, 30_000);
});

describe('a worker stopping while it restarts a consumer', () => {
  it('releases its other shards at once, not once the restart has finished its messages in hand', async () => {
    const prefix = `${PREFIX}-stop-restart`;
    const store = createMembershipStore({ sql: db.sql }, prefix, PATIENT.livenessTimeoutMs);
    // The first shard whose consumer is released, the restart's, finishes its messages in hand
    // only when the test lets it; any later release at once.
    let restarting: number | undefined;
    let restarted!: () => void;
    const finished = new Promise<void>((resolve) => (restarted = resolve));
    const consumer = consumerOfShards();
    const slowFirstRelease = { ...consumer, release: async (shard: number) => {
      if (restarting === undefined) {
        restarting = shard;
        await finished;
      }
      await consumer.release(shard);
    } };
    let prefetch = 10;
    const a = coordinatorFor('worker-a', store, undefined, { ...PATIENT, prefetchFor: () => prefetch, consumer: slowFirstRelease });
    try {
      await waitFor('worker-a to take every shard', async () => (await a.tick(), a.owned().length === SHARDS));
      // Twice the prefetch: a round restarts one consumer to take it.
      prefetch = 20;
      await waitFor('a consumer restart under way', async () => (await a.tick(), restarting !== undefined));
      const restart = restarting!;
      const other = restart === 0 ? 1 : 0;
      const stopped = a.stop(20_000);
      await waitFor('the other shard released while the restart still finishes its messages', async () => {
        const [row] = await db.sql<{ owner: string | null }[]>`SELECT owner FROM work_shard_owners WHERE queue_prefix = ${prefix} AND shard = ${other}`;
        return row!.owner === null;
      }, 5_000);
      expect(a.owned()).toEqual([restart]);
      restarted();
      expect(await stopped).toBe(true);
      expect(a.owned()).toEqual([]);
    } finally {
      restarted();
    }
  }, 30_000);
});

describe('a stopping worker whose member row is gone', () => {
  it('says so, rather than that it cannot read the group from Postgres, and hands its shards on as if taken over', async () => {
    const prefix = `${PREFIX}-row-gone`;
    const store = createMembershipStore({ sql: db.sql }, prefix, LIVENESS_MS);
    const lines: { level: number; msg: string }[] = [];
    const log = createLogger('info', 'test-worker', { write: (line: string) => void lines.push(JSON.parse(line)) });
    const calls: string[] = [];
    let finish!: () => void;
    const finishing = new Promise<void>((resolve) => (finish = resolve));
    const coordinator = coordinatorFor('worker-gone', store, undefined, {
      log,
      consumer: {
        ...consumerOfShards(),
        release: async (shard: number) => void calls.push(`release ${shard}`),
        // The first shard's messages in hand keep the stop under way.
        relinquish: async (shard: number) => (calls.push(`relinquish ${shard}`), shard === 0 ? finishing : undefined),
      },
    });
    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    await db.sql`DELETE FROM worker_members WHERE queue_prefix = ${prefix} AND member_id = 'worker-gone'`;
    const stopping = coordinator.stop(10_000);
    try {
      await waitFor('the shards handed on', () => calls.length === SHARDS);
      await coordinator.tick();
    } finally {
      finish();
    }
    expect(await stopping).toBe(true);
    expect(calls.sort()).toEqual(['relinquish 0', 'relinquish 1']);
    expect(lines.filter((line) => line.msg.includes('cannot read the worker group'))).toEqual([]);
    expect(lines.filter((line) => line.msg.includes('member row is gone'))).toHaveLength(1);
  }, 30_000);
});

describe('a group that a reshard pauses', () => {
  it('is logged and counted by each worker when it pauses, again while it stays paused, and when it resumes', async () => {
    const prefix = `${PREFIX}-paused-log`;
    const store = createMembershipStore({ sql: db.sql }, prefix, LIVENESS_MS);
    await db.sql`INSERT INTO work_shard_settings (queue_prefix, shard_count) VALUES (${prefix}, ${SHARDS})`;
    const lines: { level: number; msg: string; pausedSeconds?: number }[] = [];
    const log = createLogger('info', 'test-worker', { write: (line: string) => void lines.push(JSON.parse(line)) });
    const metrics = createMetrics('worker', { processMetrics: false });
    const reminderMs = 300;
    const coordinator = coordinatorFor('worker-a', store, undefined, { log, metrics, pausedReminderMs: reminderMs });
    const paused = () => counterValue(metrics, 'wagate_worker_group_paused', {});
    const pauseNotices = () => lines.filter((line) => line.level === 40 && line.msg.includes('a wagate reshard pauses the worker group'));

    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    expect(await paused()).toBe(0);
    expect(pauseNotices()).toEqual([]);

    await db.sql`UPDATE work_shard_settings SET paused = true WHERE queue_prefix = ${prefix}`;
    await waitFor('the worker to release its shards', async () => (await coordinator.tick(), coordinator.owned().length === 0));
    expect(await paused()).toBe(1);
    expect(pauseNotices()).toHaveLength(1);
    expect(pauseNotices()[0]!.msg).toContain('run the same wagate reshard --to N again');
    await coordinator.tick();
    expect(pauseNotices()).toHaveLength(1);
    // Still paused a reminder later: said again, with how long it has lasted.
    await waitFor('the reminder', async () => (await coordinator.tick(), pauseNotices().length === 2));
    expect(pauseNotices()[1]!.pausedSeconds).toBeGreaterThanOrEqual(0);

    await db.sql`UPDATE work_shard_settings SET paused = false WHERE queue_prefix = ${prefix}`;
    await waitFor('the worker to take its shards again', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    expect(await paused()).toBe(0);
    expect(lines.filter((line) => line.msg.startsWith('the reshard has resumed the worker group'))).toHaveLength(1);
    await coordinator.stop(5_000);
  }, 30_000);
});

describe('a worker whose own heartbeat has lapsed while it holds shards', () => {
  /** A coordinator whose consumer records how each shard was let go, and whose heartbeats can be made to stop landing. */
  function lapsingWorker(memberId: string, prefix: string) {
    const real = createMembershipStore({ sql: db.sql }, prefix, LIVENESS_MS);
    const state = { heartbeatsLand: true };
    const store = { ...real, heartbeat: (id: string, join?: boolean) => (state.heartbeatsLand ? real.heartbeat(id, join) : Promise.resolve()) };
    const calls: string[] = [];
    const coordinator = coordinatorFor(memberId, store, undefined, {
      consumer: {
        ...consumerOfShards(),
        release: async (shard: number) => void calls.push(`release ${shard}`),
        relinquish: async (shard: number) => void calls.push(`relinquish ${shard}`),
      },
    });
    const expire = () => db.sql`UPDATE worker_members SET heartbeat_at = now() - interval '1 hour' WHERE queue_prefix = ${prefix} AND member_id = ${memberId}`;
    return { coordinator, calls, state, expire, store: real };
  }

  it('relinquishes them in a tick rather than cancelling its consumers, since another may take them over at any moment', async () => {
    const prefix = `${PREFIX}-lapsed-tick`;
    const { coordinator, calls, state, expire } = lapsingWorker('lapsed-worker', prefix);
    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    state.heartbeatsLand = false;
    await expire();
    await waitFor('the worker to let its shards go', async () => (await coordinator.tick(), coordinator.owned().length === 0));
    expect(calls.sort()).toEqual(['relinquish 0', 'relinquish 1']);
  }, 30_000);

  it('relinquishes them when it stops', async () => {
    const { coordinator, calls, state, expire } = lapsingWorker('lapsed-stopper', `${PREFIX}-lapsed-stop`);
    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    state.heartbeatsLand = false;
    await expire();
    expect(await coordinator.stop(5_000)).toBe(true);
    expect(calls.sort()).toEqual(['relinquish 0', 'relinquish 1']);
  }, 30_000);

  it('keeps them when its heartbeat only waited on a lock past the liveness timeout: the heartbeat counts from when it was written', async () => {
    const prefix = `${PREFIX}-lapsed-lock`;
    const { coordinator, calls } = lapsingWorker('locked-worker', prefix);
    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    // Another transaction holds the member row for twice the liveness timeout, so the heartbeat waits.
    const lock = await lockMemberRow(prefix, 'locked-worker');
    const tick = coordinator.tick();
    await waitFor('the heartbeat to wait on the lock', async () => (await lockWaiters()) > 0);
    await new Promise((resolve) => setTimeout(resolve, 2 * LIVENESS_MS));
    await lock.release();
    await tick;
    expect(coordinator.owned()).toEqual([0, 1]);
    expect(calls).toEqual([]);
    await coordinator.stop(5_000);
  }, 30_000);
});

describe('a worker that lost its broker channel with a message still under way', () => {
  it('heartbeats until that work is finished and the shard released, so nobody takes the shard over beside it', async () => {
    const prefix = `${PREFIX}-no-channel`;
    const store = createMembershipStore({ sql: db.sql }, prefix, PATIENT.livenessTimeoutMs);
    let channel = true;
    let finished!: () => void;
    const underWay = new Promise<void>((resolve) => (finished = resolve));
    const subscribed = new Set<number>();
    const a = coordinatorFor('worker-a', store, undefined, {
      ...PATIENT,
      consumer: {
        hasChannel: () => channel,
        isSubscribed: (shard: number) => channel && subscribed.has(shard),
        subscribe: async (shard: number) => channel && Boolean(subscribed.add(shard)),
        // As the real consumer: with the channel gone, a release waits for the work still under way.
        release: async () => underWay,
        relinquish: async () => underWay,
      },
    });
    await waitFor('worker-a to take every shard', async () => (await a.tick(), a.owned().length === SHARDS));
    channel = false;
    const beating = setInterval(() => void a.tick(), PATIENT.heartbeatMs);
    try {
      // The provider call still runs for several liveness timeouts: worker-a stays live, and a
      // worker that has watched the group all along cannot take its shards.
      const b = coordinatorFor('worker-b', store, undefined, PATIENT);
      const until = performance.now() + 4 * PATIENT.livenessTimeoutMs;
      while (performance.now() < until) {
        await b.tick();
        await new Promise((resolve) => setTimeout(resolve, PATIENT.heartbeatMs));
      }
      expect(b.owned()).toEqual([]);
      expect(await store.acquire('worker-b', 0, true)).toBe(false);
      finished();
      await waitFor('worker-a to record its releases', async () => a.owned().length === 0);
      await waitFor('worker-b to take the shards once they are released', async () => (await b.tick(), b.owned().length === SHARDS), 10_000);
      await b.stop(5_000);
    } finally {
      clearInterval(beating);
      finished();
    }
  }, 30_000);
});

describe('a worker that loses its broker channel while it restarts a consumer with messages in hand', () => {
  it('heartbeats until the restart has finished that work, so nobody takes the shard over beside it', async () => {
    const prefix = `${PREFIX}-restart-no-channel`;
    const store = createMembershipStore({ sql: db.sql }, prefix, PATIENT.livenessTimeoutMs);
    let channel = true;
    let prefetch = 10;
    let finished!: () => void;
    const underWay = new Promise<void>((resolve) => (finished = resolve));
    const subscribed = new Set<number>();
    let restarting: number | undefined;
    const a = coordinatorFor('worker-a', store, undefined, {
      ...PATIENT,
      prefetchFor: () => prefetch,
      consumer: {
        hasChannel: () => channel,
        isSubscribed: (shard: number) => channel && subscribed.has(shard),
        subscribe: async (shard: number) => channel && Boolean(subscribed.add(shard)),
        // The restarted shard's release waits for its work in hand; any other shard has none.
        release: async (shard: number) => {
          restarting ??= shard;
          subscribed.delete(shard);
          if (shard === restarting) await underWay;
        },
        relinquish: async (shard: number) => void subscribed.delete(shard),
      },
    });
    await waitFor('worker-a to take every shard', async () => (await a.tick(), a.owned().length === SHARDS));
    // A share three times as large: the consumers restart one by one with the new prefetch.
    prefetch = 30;
    await waitFor('a consumer restart to begin', async () => (await a.tick(), restarting !== undefined));
    channel = false;
    const beating = setInterval(() => void a.tick(), PATIENT.heartbeatMs);
    try {
      await waitFor('the shard not restarting to be released', () => a.owned().length === 1);
      const until = performance.now() + 4 * PATIENT.livenessTimeoutMs;
      while (performance.now() < until) await new Promise((resolve) => setTimeout(resolve, PATIENT.heartbeatMs));
      expect((await store.read()).heartbeating).toContain('worker-a');
      expect(await store.acquire('worker-b', restarting!, true)).toBe(false);
    } finally {
      clearInterval(beating);
      finished();
    }
    await a.stop(5_000);
  }, 30_000);
});

describe('the group gauges while the group cannot be read', () => {
  it('read NaN rather than the last figures, and the figures again once Postgres answers', async () => {
    const real = createMembershipStore({ sql: db.sql }, `${PREFIX}-gauges`, LIVENESS_MS);
    let readFails = false;
    const store = { ...real, read: () => (readFails ? Promise.reject(new Error('connection refused')) : real.read()) };
    const metrics = createMetrics('worker', { processMetrics: false });
    const coordinator = coordinatorFor('gauge-worker', store, undefined, { metrics });
    const gauges = async () => [await counterValue(metrics, 'wagate_worker_group_members', {}), await counterValue(metrics, 'wagate_worker_group_paused', {})];
    await waitFor('the worker to take every shard', async () => (await coordinator.tick(), coordinator.owned().length === SHARDS));
    expect(await gauges()).toEqual([1, 0]);
    readFails = true;
    await coordinator.tick();
    expect(await gauges()).toEqual([NaN, NaN]);
    // The shards stay held through the outage.
    expect(coordinator.owned()).toEqual([0, 1]);
    readFails = false;
    await coordinator.tick();
    expect(await gauges()).toEqual([1, 0]);
    await coordinator.stop(5_000);
  }, 30_000);
});
