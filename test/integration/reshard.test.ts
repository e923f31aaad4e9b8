import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { deleteTopology } from '../support/amqp';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { runWagate, runWagateKilledAt } from '../support/process';
import { allIds, extraClaims, orderAndCallsPerSender, sendersNamed, sendRounds, unfinished, type SentBySender } from '../support/scale-out';
import { waitFor } from '../support/wait';
import { startIngest } from '../../src/commands/ingest';
import { createLogger } from '../../src/telemetry/logger';
import { withPort } from '../support/database';
import { startTcpProxy } from '../support/tcp-proxy';

let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ WORK_SHARDS: '2' });
});

afterAll(async () => {
  await pipeline.stop();
  // The pipeline removes the two shards it knows; the reshard made a third.
  await deleteTopology(topologyFromConfig(loadConfig({ ...pipeline.env, WORK_SHARDS: '3' })));
});

const wagate = runWagate;

describe('wagate reshard', () => {
  it('moves a backlog from 2 to 3 shards while a worker drains it, and every sender keeps its order', async () => {
    const senders = sendersNamed('1555107', 16);
    const texts = Array.from({ length: 8 }, (_, index) => `${index + 1} coke`);
    const sent: SentBySender = await sendRounds(pipeline.ingest.baseUrl, senders, texts);
    // A worker with the old count is busy on the backlog when the reshard starts; with a
    // small prefetch (not raised from WORKER_MESSAGES_IN_HAND) most of the backlog is still on
    // the queues, to be moved.
    pipeline.fake.behave({ kind: 'delay', ms: 50 });
    const old = await pipeline.startWorker({ WORKER_PREFETCH: '4', WORKER_MESSAGES_IN_HAND: '0' });

    const result = await wagate(['reshard', '--to', '3'], pipeline.env);
    expect(result.stderr).toContain('waiting for them to release 2 shard(s)');
    expect(result.stdout).toContain('resharded from 2 to 3');
    expect(result.stdout).toContain('deploy WORK_SHARDS=3');
    expect(result.code).toBe(0);
    const moved = Number(result.stdout.match(/moved (\d+) message/)?.[1]);
    expect(moved).toBeGreaterThan(0);
    // The old worker released its shards and takes none back with the wrong count.
    await waitFor('the old worker to hold nothing', () => old.coordinator.owned().length === 0);
    expect((await old.metrics.rebalances.get()).values.find((v) => v.labels.direction === 'released')!.value).toBeGreaterThan(0);

    await pipeline.startWorker({ WORK_SHARDS: '3' });
    await waitFor('every message finished', async () => (await unfinished(pipeline.db.sql, allIds(sent))) === 0, 60_000);
    expect(await orderAndCallsPerSender(pipeline.db.sql, pipeline.fake, sent)).toEqual([]);
    expect(await extraClaims(pipeline.db.sql, allIds(sent))).toBe(0);
    const [setting] = await pipeline.db.sql`SELECT shard_count, paused FROM work_shard_settings WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!}`;
    expect(setting).toEqual({ shard_count: 3, paused: false });

    // An ingest still running with the old count: its messages reach the sender's new shard anyway.
    const late = await sendRounds(pipeline.ingest.baseUrl, senders.slice(0, 6), ['6 coke']);
    await waitFor('the late messages finished', async () => (await unfinished(pipeline.db.sql, allIds(late))) === 0, 30_000);
  }, 120_000);

  it('finishes a growing reshard killed while it distributed, when run again to the same count, and every sender keeps its order', async () => {
    // A group of its own: killed half way, it leaves its workers paused.
    const grow = await startPipeline({ WORK_SHARDS: '2' });
    try {
      const sent = await sendRounds(grow.ingest.baseUrl, sendersNamed('1555108', 16), ['1 coke', '2 coke', '3 coke', '4 coke']);
      await waitFor('the backlog to be published', async () => (await grow.db.sql`SELECT 1 FROM outbox`).length === 0);
      const killed = await runWagateKilledAt('reshard.distributing', ['reshard', '--to', '4'], grow.env);
      expect(killed.stderr).toContain('took 64 message(s) off 2 old shard(s)');
      const prefix = grow.env.QUEUE_PREFIX!;
      const settings = async () => (await grow.db.sql`SELECT shard_count, paused, gathered_for FROM work_shard_settings WHERE queue_prefix = ${prefix}`)[0];
      expect(await settings()).toEqual({ shard_count: 2, paused: true, gathered_for: 4 });

      // Gathering the old shards again would put each sender's distributed messages behind its staged ones.
      const other = await wagate(['reshard', '--to', '3'], grow.env);
      expect(other.code).not.toBe(0);
      expect(other.stderr).toContain('finish it first: wagate reshard --to 4');
      const rerun = await wagate(['reshard', '--to', '4'], grow.env);
      expect(rerun.stderr).toContain('an earlier run gathered the old shards');
      expect(rerun.code).toBe(0);
      expect(await settings()).toEqual({ shard_count: 4, paused: false, gathered_for: null });

      await grow.startWorker({ WORK_SHARDS: '4' });
      await waitFor('every message finished', async () => (await unfinished(grow.db.sql, allIds(sent))) === 0, 60_000);
      expect(await orderAndCallsPerSender(grow.db.sql, grow.fake, sent)).toEqual([]);
    } finally {
      await grow.stop();
      await deleteTopology(topologyFromConfig(loadConfig({ ...grow.env, WORK_SHARDS: '4' })));
    }
  }, 120_000);

  it('refuses to start an ingest or a worker whose WORK_SHARDS differs from the stored count, saying what to do', async () => {
    expect((await pipeline.db.sql`SELECT shard_count FROM work_shard_settings`)[0]?.shard_count).toBe(3);
    for (const command of ['worker', 'ingest']) {
      const result = await wagate([command], { ...pipeline.env, WORK_SHARDS: '2' });
      expect({ command, code: result.code }).toEqual({ command, code: 1 });
      expect(result.stderr).toContain('WORK_SHARDS is 2, but the work queues');
      expect(result.stderr).toContain('sharded 3 ways');
      expect(result.stderr).toContain('Set WORK_SHARDS=3');
    }
  }, 60_000);

  it('stops an ingest that could not check WORK_SHARDS at start once Postgres shows the count differs', async () => {
    const postgres = new URL(pipeline.db.url);
    const proxy = await startTcpProxy(Number(postgres.port || 5432), postgres.hostname);
    proxy.setMode('refuse');
    try {
      const config = loadConfig({ ...pipeline.env, DATABASE_URL: withPort(pipeline.db.url, proxy.port), WORK_SHARDS: '2', PORT: '0', METRICS_PORT: '0', WARM_UP_REHEARSAL_REQUESTS: '0' });
      const ingest = await startIngest(config, createLogger('silent', 'wagate-test'));
      try {
        proxy.setMode('forward');
        const fatal = await ingest.fatal;
        expect(fatal.message).toContain('WORK_SHARDS is 2, but the work queues');
        expect(fatal.message).toContain('sharded 3 ways');
      } finally {
        await ingest.stop();
      }
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('answers a missing or impossible --to with usage', async () => {
    for (const args of [['reshard'], ['reshard', '--to', '0'], ['reshard', '--to', 'many']]) {
      const result = await wagate(args, pipeline.env);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('reshard needs --to N');
    }
  }, 60_000);
});
