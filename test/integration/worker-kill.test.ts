import { startPipeline, type Pipeline } from '../support/pipeline';
import { spawnWagate, type ChildIngest } from '../support/process';
import { allIds, sendersNamed, sendRounds, unfinished, type SentBySender } from '../support/scale-out';
import { waitFor } from '../support/wait';

const SHARDS = 4;
const LIVENESS_MS = 2000;
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ WORK_SHARDS: String(SHARDS), WORKER_LIVENESS_TIMEOUT_MS: String(LIVENESS_MS) });
});

afterAll(async () => {
  await pipeline.stop();
});

/** Shards per worker process, from the owner table (a member id carries its process id). */
async function shardsByPid(children: ChildIngest[]): Promise<number[]> {
  const rows = await pipeline.db.sql<{ owner: string | null }[]>`
    SELECT owner FROM work_shard_owners WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!}`;
  return children.map((child) => rows.filter((row) => row.owner?.includes(`-${child.child.pid}-`)).length);
}

/** The shards one worker process holds, from the owner table. */
async function shardsOf(child: ChildIngest): Promise<number[]> {
  const rows = await pipeline.db.sql<{ shard: number }[]>`
    SELECT shard FROM work_shard_owners WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!} AND owner LIKE ${`%-${child.child.pid}-%`}`;
  return rows.map((row) => row.shard);
}

describe('a worker killed during load', () => {
  it('loses its shards to the survivor once its heartbeat expires, and nothing is lost or done twice', async () => {
    const [doomed, survivor] = [await spawnWagate('worker', pipeline.env), await spawnWagate('worker', pipeline.env)];
    try {
      await waitFor('the shards split 2/2', async () => (await shardsByPid([doomed, survivor])).join() === '2,2', 30_000);
      pipeline.fake.behave({ kind: 'delay', ms: 30 });
      const senders = sendersNamed('1555105', 20);
      const texts = Array.from({ length: 8 }, (_, index) => `${index + 1} coke`);
      const sent: SentBySender = new Map();
      const load = sendRounds(pipeline.ingest.baseUrl, senders, texts, sent);
      await waitFor('the load under way', () => (sent.get(senders[0]!)?.length ?? 0) >= 3, 30_000);

      const doomedShards = await shardsOf(doomed);
      doomed.child.kill('SIGKILL');
      expect(await doomed.exited).toBeNull();
      const [member] = await pipeline.db.sql<{ heartbeat: string }[]>`
        SELECT heartbeat_at::text AS heartbeat FROM worker_members
        WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!} AND member_id LIKE ${`%-${doomed.child.pid}-%`}`;
      await waitFor('the survivor to hold every shard', async () => (await shardsByPid([doomed, survivor])).join() === `0,${SHARDS}`, LIVENESS_MS + 20_000);
      // Both times are Postgres's: the dead worker's last heartbeat, and when its shards changed hands.
      const [takeover] = await pipeline.db.sql<{ afterMs: number }[]>`
        SELECT extract(epoch FROM min(changed_at) - ${member!.heartbeat}::timestamptz)::float8 * 1000 AS "afterMs"
        FROM work_shard_owners WHERE queue_prefix = ${pipeline.env.QUEUE_PREFIX!} AND shard = ANY(${doomedShards}::int[])`;
      await load;
      await waitFor('every message finished', async () => (await unfinished(pipeline.db.sql, allIds(sent))) === 0, 60_000);

      // Taken only once the dead worker's heartbeat had expired: nobody raced its messages in hand.
      expect(takeover!.afterMs).toBeGreaterThanOrEqual(LIVENESS_MS);
      const problems: string[] = [];
      const calls = pipeline.fake.calls();
      for (const [from, ids] of sent) {
        const orders = await pipeline.db.sql<{ message_id: string }[]>`SELECT message_id FROM orders WHERE phone_number = ${from} ORDER BY id`;
        if (orders.map((o) => o.message_id).join() !== ids.join()) problems.push(`${from}: orders are not one per message in order`);
        // A reply cut off mid-call is unknown and never resent: calls may miss one, never repeat or reorder.
        const quantities = calls
          .filter((call) => (call.body as { to?: string }).to === from)
          .map((call) => Number((call.body as { text: { body: string } }).text.body.match(/: (\d+) ×/)?.[1]));
        if (quantities.some((q, i) => i > 0 && q <= quantities[i - 1]!)) problems.push(`${from}: calls ${quantities.join()}`);
      }
      expect(problems).toEqual([]);
      const replies = await pipeline.db.sql<{ status: string; n: number }[]>`
        SELECT status, count(*)::integer AS n FROM outbound_messages WHERE inbound_message_id = ANY(${allIds(sent)}) GROUP BY status`;
      const byStatus = Object.fromEntries(replies.map((r) => [r.status, r.n]));
      expect((byStatus.sent ?? 0) + (byStatus.unknown ?? 0)).toBe(allIds(sent).length);
      expect(calls.filter((call) => sent.has((call.body as { to?: string }).to ?? '')).length).toBeGreaterThanOrEqual(byStatus.sent ?? 0);
    } finally {
      doomed.child.kill('SIGKILL');
      await survivor.stop();
      pipeline.fake.reset();
    }
  }, 120_000);
});
