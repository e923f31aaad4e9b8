import { callsTo, startPipeline, type Pipeline } from '../support/pipeline';
import { shardOf } from '../../src/queue/topology';
import amqp from 'amqplib';
import { TEST_AMQP_URL } from '../support/amqp';
import { eraseEverywhere, listDead, replayDead } from '../support/dead-letters';
import { resumeStopped, runWagate, spawnWagate } from '../support/process';
import { waitFor } from '../support/wait';
import { postMetaText, uniqueWamid } from '../support/webhooks';

let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline();
});

afterAll(async () => {
  await pipeline.stop();
});

const statusOf = async (id: string) => (await pipeline.db.sql`SELECT status FROM webhook_messages WHERE message_id = ${id}`)[0]?.status;

describe('dlq replay beside a worker that is dead-lettering the same message', () => {
  it('leaves the letter in the queue until the worker has recorded it dead, or while no queue takes it, so the replay is never lost', async () => {
    const worker = await spawnWagate('worker', { ...pipeline.env, WAGATE_FAILPOINT: 'worker.after-dead-letter-publish' });
    const from = '15550700001';
    const id = uniqueWamid();
    try {
      pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
      await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
      // The letter is confirmed in the dead-letter queue; the record is not yet marked dead.
      await waitFor('the worker between its dead letter and its record', () => worker.logs.some((entry) => entry.failpoint === 'worker.after-dead-letter-publish'), 30_000);
      expect(await statusOf(id)).toBe('processing');
      expect(await replayDead(pipeline.db.sql, pipeline.ingest.topology)).toEqual({ replayed: [], skipped: [], settling: [`whatsapp:${id}`], unroutable: [] });
      expect((await listDead(pipeline.ingest.topology)).map((letter) => letter.id)).toEqual([`whatsapp:${id}`]);
      expect(await statusOf(id)).toBe('processing');
      // The command says so and exits 1: a script's `dlq replay && …` must not go on as if it were done.
      const replay = await runWagate(['dlq', 'replay'], { ...pipeline.env, LOG_LEVEL: 'silent' });
      expect([replay.code, replay.stderr]).toEqual([1, expect.stringContaining(`may still be recording it dead, so replay again in a minute: whatsapp:${id}`)]);
    } finally {
      worker.child.kill('SIGKILL');
      await worker.exited;
    }
    // The worker died there: its record stays 'processing' for good, and once it has been still
    // for the settle period a replay takes it, and the message is processed.
    await pipeline.db.sql`UPDATE webhook_messages SET updated_at = now() - interval '1 minute' WHERE message_id = ${id}`;
    // With its shard queue gone (as after an interrupted shrink), the broker returns the replayed copy: the letter stays.
    const shard = shardOf(from, pipeline.ingest.topology.shards.length);
    const shardQueue = pipeline.ingest.topology.shards[shard]!.queue;
    const connection = await amqp.connect(TEST_AMQP_URL);
    try {
      await (await connection.createChannel()).deleteQueue(shardQueue);
    } finally {
      await connection.close();
    }
    expect(await replayDead(pipeline.db.sql, pipeline.ingest.topology)).toEqual({ replayed: [], skipped: [], settling: [], unroutable: [`whatsapp:${id}`] });
    expect((await listDead(pipeline.ingest.topology)).map((letter) => letter.id)).toEqual([`whatsapp:${id}`]);
    // Neither command brought the queue back: a shrinking reshard may have deleted it meanwhile.
    const check = await amqp.connect(TEST_AMQP_URL);
    try {
      const channel = await check.createChannel();
      channel.on('error', () => undefined);
      await expect(channel.checkQueue(shardQueue)).rejects.toThrow(/NOT_FOUND/);
    } finally {
      await check.close().catch(() => undefined);
    }
    await pipeline.startWorker();
    expect(await replayDead(pipeline.db.sql, pipeline.ingest.topology)).toEqual({ replayed: [`whatsapp:${id}`], skipped: [], settling: [], unroutable: [] });
    await waitFor('the replayed message processed', async () => (await statusOf(id)) === 'processed', 30_000);
    expect(callsTo(pipeline, from)).toHaveLength(2);
    expect(await pipeline.db.sql`SELECT status FROM outbound_messages WHERE inbound_message_id = ${id}`).toEqual([{ status: 'sent' }]);
  });

  it('lets a replay that reopened the record win over the worker\'s dead write that follows, so the replayed copy is processed', async () => {
    // The spawned worker alone takes the shards, and pauses (SIGSTOP) between its dead letter and its record.
    for (const running of pipeline.workers.splice(0)) await running.stop();
    const worker = await spawnWagate('worker', { ...pipeline.env, WAGATE_FAILPOINT: 'worker.after-dead-letter-publish', WAGATE_FAILPOINT_ACTION: 'pause' });
    const from = '15550700002';
    const id = uniqueWamid();
    try {
      pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
      await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
      await waitFor('the worker paused between its dead letter and its record', () => worker.logs.some((entry) => entry.failpoint === 'worker.after-dead-letter-publish'), 30_000);
      expect(await statusOf(id)).toBe('processing');
      // Its claim is older than the settle period (a slow provider call, then a confirm held
      // up by the broker): the replay reopens the record and publishes the message again.
      await pipeline.db.sql`UPDATE webhook_messages SET updated_at = now() - interval '1 minute' WHERE message_id = ${id}`;
      expect(await replayDead(pipeline.db.sql, pipeline.ingest.topology)).toEqual({ replayed: [`whatsapp:${id}`], skipped: [], settling: [], unroutable: [] });
      expect(await statusOf(id)).toBe('queued');
      await resumeStopped(worker.child);
      // The dead write finds the record changed and leaves it: the replayed copy is processed.
      await waitFor('the replayed message processed', async () => (await statusOf(id)) === 'processed', 30_000);
      // The line may reach this process after the status it preceded: waited for.
      await waitFor('the worker to say the record changed', () =>
        worker.logs.some((entry) => String(entry.msg).startsWith('the message record changed while its dead letter went out')), 30_000);
    } finally {
      worker.child.kill('SIGKILL');
      await worker.exited;
    }
    expect(callsTo(pipeline, from)).toHaveLength(2);
    expect(await listDead(pipeline.ingest.topology)).toEqual([]);
  });

  it('records the message dead although the provider delivered its webhook again meanwhile (a duplicate is no replay)', async () => {
    for (const running of pipeline.workers.splice(0)) await running.stop();
    const worker = await spawnWagate('worker', { ...pipeline.env, WAGATE_FAILPOINT: 'worker.after-dead-letter-publish', WAGATE_FAILPOINT_ACTION: 'pause' });
    const from = '15550700003';
    const id = uniqueWamid();
    try {
      pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
      await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
      await waitFor('the worker paused between its dead letter and its record', () => worker.logs.some((entry) => entry.failpoint === 'worker.after-dead-letter-publish'), 30_000);
      // Meta retries its webhook: the ledger counts the duplicate on the same record.
      expect((await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' })).status).toBe(200);
      expect((await pipeline.db.sql`SELECT duplicate_count FROM webhook_messages WHERE message_id = ${id}`)[0]!.duplicate_count).toBe(1);
      await resumeStopped(worker.child);
      await waitFor('the message recorded dead', async () => (await statusOf(id)) === 'dead', 30_000);
    } finally {
      worker.child.kill('SIGKILL');
      await worker.exited;
    }
    expect((await listDead(pipeline.ingest.topology)).map((letter) => letter.id)).toEqual([`whatsapp:${id}`]);
    expect(callsTo(pipeline, from)).toHaveLength(1);
  });
  it('drops the letter of a customer erased while it went out, after the erase had swept the dead-letter queue', async () => {
    for (const running of pipeline.workers.splice(0)) await running.stop();
    const worker = await spawnWagate('worker', { ...pipeline.env, WAGATE_FAILPOINT: 'worker.before-dead-letter-publish', WAGATE_FAILPOINT_ACTION: 'pause' });
    const from = '15550700004';
    const id = uniqueWamid();
    try {
      pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
      await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
      await waitFor('the worker paused before its dead letter', () => worker.logs.some((entry) => entry.failpoint === 'worker.before-dead-letter-publish'), 30_000);
      // The erase finds no letter to drop: it has not gone out yet (as behind a blocked publish).
      expect(await eraseEverywhere(pipeline.db.sql, pipeline.ingest.topology, `+${from}`)).toMatchObject({ messages: 1, dead_letters: 0 });
      await resumeStopped(worker.child);
      await waitFor('the worker to drop the letter', () => worker.logs.find((entry) => String(entry.msg).startsWith('the customer was erased while the message was dead-lettered')), 30_000);
    } finally {
      worker.child.kill('SIGKILL');
      await worker.exited;
    }
    expect(worker.logs.find((entry) => String(entry.msg).startsWith('the customer was erased while the message was dead-lettered'))).toMatchObject({ dropped: 1 });
    expect((await listDead(pipeline.ingest.topology)).map((letter) => letter.id)).not.toContain(`whatsapp:${id}`);
    expect(await statusOf(id)).toBe('erased');
  });
  it('keeps the record dead with its reason, and its reply failed, when no queue takes the replayed copy', async () => {
    await pipeline.startWorker();
    const from = '15550700005';
    const id = uniqueWamid();
    pipeline.fake.behave({ kind: 'status', status: 400, metaCode: 131047 }, 1);
    await postMetaText(pipeline.ingest.baseUrl, { id, from, text: '1 coke' });
    await waitFor('the message recorded dead', async () => (await statusOf(id)) === 'dead', 30_000);
    // No worker declares the shard queue again meanwhile.
    for (const running of pipeline.workers.splice(0)) await running.stop();
    const before = await pipeline.db.sql`
      SELECT m.status, m.last_error, m.updated_at::text AS updated_at, o.status AS reply, o.updated_at::text AS reply_updated_at
      FROM webhook_messages m JOIN outbound_messages o ON o.inbound_message_id = m.message_id
      WHERE m.message_id = ${id}`;
    expect(before).toEqual([expect.objectContaining({ status: 'dead', last_error: expect.stringContaining('131047'), reply: 'failed' })]);
    const shardQueue = pipeline.ingest.topology.shards[shardOf(from, pipeline.ingest.topology.shards.length)]!.queue;
    const connection = await amqp.connect(TEST_AMQP_URL);
    try {
      await (await connection.createChannel()).deleteQueue(shardQueue);
    } finally {
      await connection.close();
    }
    expect(await replayDead(pipeline.db.sql, pipeline.ingest.topology, [`whatsapp:${id}`])).toEqual({ replayed: [], skipped: [], settling: [], unroutable: [`whatsapp:${id}`] });
    // As before the replay: a letter the operator now drops is not brought back as a queued record.
    expect(await pipeline.db.sql`
      SELECT m.status, m.last_error, m.updated_at::text AS updated_at, o.status AS reply, o.updated_at::text AS reply_updated_at
      FROM webhook_messages m JOIN outbound_messages o ON o.inbound_message_id = m.message_id
      WHERE m.message_id = ${id}`).toEqual(before);
    expect((await listDead(pipeline.ingest.topology)).map((letter) => letter.id)).toContain(`whatsapp:${id}`);
  });
});
