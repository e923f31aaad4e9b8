import type { Sql } from '../db/client';

export interface GroupView {
  /** The stored shard count, or null when none is stored. */
  shardCount: number | null;
  /** A reshard is moving messages: every worker releases its shards. */
  paused: boolean;
  /** Members whose heartbeat is younger than the liveness timeout and who are not leaving, sorted. */
  liveMembers: string[];
  /** Members whose heartbeat is younger than the liveness timeout, those leaving included. */
  heartbeating: string[];
  /** Current holder of each shard's consumer, by shard; null when released. */
  owners: Map<number, string | null>;
}

export interface MembershipStore {
  /**
   * Renews the member's heartbeat, joining the group if it is not in it. A stopping member
   * passes join false: a heartbeat that lands after its leave must not bring it back.
   */
  heartbeat(memberId: string, join?: boolean): Promise<void>;
  read(): Promise<GroupView>;
  /**
   * Takes a shard that is free, already ours or, when takeExpired, held by a member whose
   * heartbeat has expired; nothing while a reshard pauses the group. True when it is ours now.
   */
  acquire(memberId: string, shard: number, takeExpired: boolean): Promise<boolean>;
  /** Records that the member no longer holds these shards (it has finished their messages). */
  release(memberId: string, shards: number[]): Promise<void>;
  /**
   * Marks the member as stopping: it drops out of the others' assignment, so they take the
   * shards it releases one by one, while its heartbeat still keeps the ones it holds its own.
   */
  markLeaving(memberId: string): Promise<void>;
  /** Removes the member, so that the others need not wait for its heartbeat to expire. */
  leave(memberId: string): Promise<void>;
}

/** A stopping worker's heartbeat found its member row gone: nothing was renewed. */
export class MemberRowGone extends Error {
  constructor() {
    super('this worker\'s member row is gone (forgotten after a long lapse of its heartbeats, or deleted by hand)');
  }
}

/** Members silent for this many liveness timeouts are deleted, so the table stays small. */
const FORGET_AFTER_TIMEOUTS = 20;

export interface MembershipConnections {
  /** Takes and releases: they may wait on a lock that a decision write holds. */
  sql: Sql;
  /**
   * The heartbeat, the group's read and the member row's leaving, on a connection that nothing
   * else queues on, so that they go through while every pooled connection waits on Postgres.
   * Defaults to sql.
   */
  heartbeatSql?: Sql;
}

/** The shard membership of one queue group (QUEUE_PREFIX) in Postgres; times are Postgres's own. */
export function createMembershipStore(connections: MembershipConnections, queuePrefix: string, livenessTimeoutMs: number): MembershipStore {
  const { sql, heartbeatSql: beatSql = sql } = connections;
  const liveness = `${livenessTimeoutMs} milliseconds`;
  return {
    // One statement each for the heartbeat and the read, since every worker runs both on every
    // tick: as five statements they cost an idle worker 0.018 cores at a 250 ms heartbeat.
    // The heartbeat's time is when it is written (clock_timestamp), not when its statement
    // began (now()): one that waited on a lock would otherwise land already stale, and the
    // others could take the worker's shards while it still counts itself live. The upsert
    // locks the row before it computes the time; the stopping worker's plain update may compute
    // it before a wait on the row (a take's share lock), which only makes it look older than it
    // is: never later than the lease the worker counts from when it sent the heartbeat.
    async heartbeat(memberId, join = true) {
      if (!join) {
        const beat = await beatSql`UPDATE worker_members SET heartbeat_at = clock_timestamp() WHERE queue_prefix = ${queuePrefix} AND member_id = ${memberId}`;
        // Gone: forgotten after a long lapse. Nothing was renewed, so it is no heartbeat.
        if (beat.count === 0) throw new MemberRowGone();
        return;
      }
      // The delete leaves this member's own row to the upsert: one statement may not change a row twice.
      // It skips rows locked by others (a take share-locks its owner's row), rather than wait
      // on them with this member's heartbeat; a later heartbeat forgets them. Two members
      // forgetting each other at once cannot then deadlock either.
      await beatSql`
        WITH beat AS (
          INSERT INTO worker_members (queue_prefix, member_id, heartbeat_at) VALUES (${queuePrefix}, ${memberId}, clock_timestamp())
          ON CONFLICT (queue_prefix, member_id) DO UPDATE SET heartbeat_at = clock_timestamp()),
        forgotten AS (
          SELECT member_id FROM worker_members WHERE queue_prefix = ${queuePrefix} AND member_id <> ${memberId}
            AND heartbeat_at < now() - ${FORGET_AFTER_TIMEOUTS} * ${liveness}::interval
          FOR UPDATE SKIP LOCKED)
        DELETE FROM worker_members WHERE queue_prefix = ${queuePrefix} AND member_id IN (SELECT member_id FROM forgotten)`;
    },
    async read() {
      // The owners come as JSON pairs: in a text[], postgres.js reads a NULL element as the
      // string "NULL", and every free shard would look held by a member that never heartbeats.
      const [row] = await beatSql<{ shard_count: number | null; paused: boolean | null; members: [string, boolean][]; owners: [number, string | null][] }[]>`
        SELECT (SELECT shard_count FROM work_shard_settings WHERE queue_prefix = ${queuePrefix}) AS shard_count,
               (SELECT paused FROM work_shard_settings WHERE queue_prefix = ${queuePrefix}) AS paused,
               coalesce((SELECT json_agg(json_build_array(member_id, leaving)) FROM worker_members
                         WHERE queue_prefix = ${queuePrefix} AND heartbeat_at > now() - ${liveness}::interval), '[]'::json) AS members,
               coalesce((SELECT json_agg(json_build_array(shard, owner) ORDER BY shard)
                         FROM work_shard_owners WHERE queue_prefix = ${queuePrefix}), '[]'::json) AS owners`;
      const { shard_count: shardCount, paused, members, owners } = row!;
      return {
        shardCount,
        paused: paused ?? false,
        liveMembers: members.flatMap(([member, leaving]) => (leaving ? [] : [member])).sort(),
        heartbeating: members.map(([member]) => member).sort(),
        owners: new Map(owners),
      };
    },
    async acquire(memberId, shard, takeExpired) {
      // An upsert, so that a shard whose row a failed start-up check never created can still be taken.
      // Nothing is taken while a reshard pauses the group. The settings row is locked for it: a
      // take that read "not paused" before the pause then either commits first, and the reshard
      // sees the shard held and waits for its release, or waits for the pause and finds it.
      // Nor is a shard taken beyond the count stored: a take that read the group before a
      // reshard to fewer shards, and reached Postgres after it, would declare again the shard
      // queue the reshard deleted, where old-count ingests' publishes would then wait unread.
      // The owner's member row is locked too, and its heartbeat read from the row as locked: a
      // heartbeat of the owner's under way then commits first and is seen (this statement's
      // snapshot, taken before it, would call the owner expired while the owner renews its lease
      // and goes on working), or waits for this take and finds the shard gone. OFFSET 0 keeps the
      // planner from filtering on the heartbeat below the lock, on the snapshot's row. The wait
      // is bounded by statement_timeout; a take that times out is tried again next round.
      // A member row inserted after the snapshot cannot be locked or read: an owner that took
      // the shard within the liveness timeout (a worker that has just joined) was live then,
      // and is left alone.

      const rows = await sql`
        INSERT INTO work_shard_owners AS o (queue_prefix, shard, owner)
        SELECT ${queuePrefix}, ${shard}, ${memberId}
        WHERE coalesce((SELECT NOT paused AND ${shard} < shard_count FROM work_shard_settings WHERE queue_prefix = ${queuePrefix} FOR SHARE), true)
        ON CONFLICT (queue_prefix, shard) DO UPDATE SET owner = ${memberId}, changed_at = now()
        WHERE o.owner IS NULL OR o.owner = ${memberId} OR (${takeExpired}::boolean AND o.changed_at < now() - ${liveness}::interval AND NOT EXISTS (
                SELECT 1 FROM (SELECT heartbeat_at FROM worker_members m
                               WHERE m.queue_prefix = o.queue_prefix AND m.member_id = o.owner OFFSET 0 FOR SHARE) owner_beat
                WHERE owner_beat.heartbeat_at > now() - ${liveness}::interval))
        RETURNING shard`;
      return rows.length === 1;
    },
    async release(memberId, shards) {
      if (shards.length === 0) return;
      await sql`UPDATE work_shard_owners SET owner = NULL, changed_at = now()
                WHERE queue_prefix = ${queuePrefix} AND owner = ${memberId} AND shard = ANY(${shards}::integer[])`;
    },
    async markLeaving(memberId) {
      await beatSql`UPDATE worker_members SET leaving = true WHERE queue_prefix = ${queuePrefix} AND member_id = ${memberId}`;
    },
    async leave(memberId) {
      await beatSql`DELETE FROM worker_members WHERE queue_prefix = ${queuePrefix} AND member_id = ${memberId}`;
    },
  };
}
