import amqp from 'amqplib';
import { closeDatabase, createDatabase } from '../../src/db/client';
import { ensureShardCount } from '../../src/ledger/shard-count';
import { declareShardTopology } from '../../src/ledger/shard-topology';
import { routingKeyFor, shardOf, topologyNames, type TopologyOptions } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { reshard } from '../../src/worker/reshard';
import { bodyOf, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { type TestDatabase } from '../support/database';
import { runWagatePausedAt } from '../support/process';
import { startReshardGroup, type ReshardGroup } from '../support/reshard-group';
import { waitFor } from '../support/wait';

/**
 * A reshard whose Postgres fails once the workers are paused says what it left behind: before
 * anything moved, the workers resume; once every message is on the new shards, they stay
 * paused, and a rerun stores the count. A failure in either used to end the command with
 * Postgres's own words only, the workers paused, unexplained.
 *
 * The failure is a table renamed away under the command, and back: a statement that fails
 * there every time, where a connection ended between two statements would only reconnect.
 */
let group: ReshardGroup;
let db: TestDatabase;
let connection: amqp.ChannelModel;
let probe: QueueProbe;
let env: Record<string, string>;
let options: TopologyOptions;
const log = createLogger('silent', 'test');

beforeAll(async () => {
  group = await startReshardGroup();
  ({ db, connection, probe, env, options } = group);
  const channel = await connection.createChannel();
  await declareShardTopology(db.sql, channel, topologyNames(options), options.prefix, log);
  await channel.close();
  await ensureShardCount(db.sql, options.prefix, 4);
});

afterAll(async () => {
  await group?.close();
});

const settings = async () => (await db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${options.prefix}`)[0];
const ownersAway = async () => void (await db.sql`ALTER TABLE work_shard_owners RENAME TO work_shard_owners_away`);
const ownersBack = async () => void (await db.sql`ALTER TABLE IF EXISTS work_shard_owners_away RENAME TO work_shard_owners`);

/** A run of the first test still under way, should it fail early: stopped, so that it lets go of the group's lock. */
let running: { stop: AbortController; ended: Promise<unknown> } | null = null;

afterEach(async () => {
  running?.stop.abort(new Error('the test ended'));
  await running?.ended;
  running = null;
  await ownersBack();
  await db.sql`UPDATE work_shard_owners SET owner = NULL WHERE queue_prefix = ${options.prefix}`;
  await db.sql`DELETE FROM worker_members WHERE queue_prefix = ${options.prefix}`;
});

it('resumes the workers, nothing moved, when the workers\' release cannot be read', async () => {
  // A live worker holds shard 0, so the command waits for its release, reading the owners.
  await db.sql`INSERT INTO worker_members (queue_prefix, member_id) VALUES (${options.prefix}, 'worker-a')`;
  await db.sql`UPDATE work_shard_owners SET owner = 'worker-a' WHERE queue_prefix = ${options.prefix} AND shard = 0`;
  const stop = new AbortController();
  const outcome = reshard({ sql: db.sql, amqpUrl: TEST_AMQP_URL, topology: options, livenessTimeoutMs: 60_000, releaseTimeoutMs: 60_000, progress: () => undefined, stop: stop.signal }, 2)
    .then(() => null, (error: Error) => error);
  running = { stop, ended: outcome };
  await waitFor('the workers to be paused', async () => (await settings())?.paused === true);
  await ownersAway();
  const error = await outcome;
  expect(error?.message).toContain('the workers\' release could not be read');
  expect(error?.message).toContain('nothing was moved and the workers resume');
  expect(await settings()).toEqual({ shard_count: 4, paused: false });
}, 90_000);

it('keeps the workers paused, and says to run it again, when the count cannot be stored after the move; the rerun stores it', async () => {
  const four = topologyNames(options);
  const senders = [0, 1, 2, 3].map((shard) => {
    for (let n = 0; ; n += 1) if (shardOf(`1555002${n}`, 4) === shard) return `1555002${n}`;
  });
  const channel = await connection.createConfirmChannel();
  for (const sender of senders) {
    const body = { v: 1, source: 'whatsapp', messageId: `wamid.${sender}`, from: sender, senderKey: sender, business: '1', contactName: null, type: 'text', timestampSeconds: null, receivedAt: '2026-12-01T10:00:00.000Z', content: {} };
    channel.publish(four.exchange, routingKeyFor(four, sender), Buffer.from(JSON.stringify(body)), { persistent: true, mandatory: true, messageId: `whatsapp:wamid.${sender}` });
  }
  await channel.waitForConfirms();
  await channel.close();

  // Held a quarter of the way through putting them on two shards: the count's write will fail.
  const result = await runWagatePausedAt('reshard.distributing', ['reshard', '--to', '2'], env, ownersAway);
  await ownersBack();
  expect(result.code).not.toBe(0);
  expect(result.stderr).toContain('the messages are on 2 shards, but the count could not be stored');
  expect(result.stderr).toContain(`the workers of "${options.prefix}" stay paused`);
  expect(result.stderr).toContain('run wagate reshard --to 2 again');
  expect(await settings()).toEqual({ shard_count: 4, paused: true });

  const again = await runWagatePausedAt('reshard.before-move', ['reshard', '--to', '2'], env, async () => undefined);
  expect([again.code, again.stderr]).toEqual([0, expect.any(String)]);
  expect(again.stdout).toContain('resharded from 4 to 2');
  expect(await settings()).toEqual({ shard_count: 2, paused: false });
  const two = topologyNames({ ...options, shards: 2 });
  const found: string[] = [];
  for (const shard of two.shards) {
    for (const delivered of await probe.drain(shard.queue)) {
      const sender = String(bodyOf(delivered).senderKey);
      expect(routingKeyFor(two, sender)).toBe(shard.routingKey);
      found.push(sender);
    }
  }
  expect(found.sort()).toEqual([...senders].sort());
}, 120_000);

it('waits out a poll of the workers\' release that fails for a passing reason, and goes on once they let go', async () => {
  // Its own pool, whose statements time out quickly: a poll that waits on a lock fails with 57014.
  const impatient = createDatabase({ url: db.url, maxConnections: 2, connectTimeoutSeconds: 5, statementTimeoutMs: 300, applicationName: 'reshard-under-test' });
  try {
    expect(await settings()).toEqual({ shard_count: 2, paused: false });
    const two = { ...options, shards: 2 };
    await db.sql`INSERT INTO worker_members (queue_prefix, member_id) VALUES (${options.prefix}, 'worker-a')`;
    await db.sql`UPDATE work_shard_owners SET owner = 'worker-a' WHERE queue_prefix = ${options.prefix} AND shard = 0`;
    const stop = new AbortController();
    const outcome = reshard({ sql: impatient, amqpUrl: TEST_AMQP_URL, topology: two, livenessTimeoutMs: 60_000, releaseTimeoutMs: 60_000, progress: () => undefined, stop: stop.signal }, 4)
      .then((report) => report, (error: Error) => error);
    running = { stop, ended: outcome };
    await waitFor('the workers to be paused', async () => (await settings())?.paused === true);

    await db.sql.begin(async (tx) => {
      await tx`LOCK TABLE work_shard_owners IN ACCESS EXCLUSIVE MODE`;
      // Two polls seen waiting on the lock: the first of them has failed by its statement timeout.
      const polls = new Set<string>();
      await waitFor('a poll to fail on its statement timeout and the next to wait', async () => {
        const waiting = await db.sql<{ started: string }[]>`
          SELECT query_start::text AS started FROM pg_stat_activity
          WHERE application_name = 'reshard-under-test' AND wait_event_type = 'Lock' AND query LIKE '%work_shard_owners%'`;
        for (const row of waiting) polls.add(row.started);
        return polls.size >= 2;
      });
      // Worker A lets go of its shard.
      await tx`UPDATE work_shard_owners SET owner = NULL WHERE queue_prefix = ${options.prefix}`;
    });
    await expect(outcome).resolves.toMatchObject({ from: 2, to: 4 });
    expect(await settings()).toEqual({ shard_count: 4, paused: false });
  } finally {
    running?.stop.abort(new Error('the test ended'));
    await running?.ended;
    await closeDatabase(impatient);
  }
}, 120_000);
