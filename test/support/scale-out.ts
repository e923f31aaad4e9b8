import type { RunningWorker } from '../../src/commands/worker';
import type { Sql } from '../../src/db/client';
import type { FakeProvider, RecordedCall } from '../../src/dev/fake-provider';
import { postMetaText, uniqueWamid } from './webhooks';

/** Message ids per sender, in the order each sender sent them. */
export type SentBySender = Map<string, string[]>;

/**
 * Posts texts[round] from every sender, one round after another: within a sender the posts
 * are sequential, so the queue holds them in the order sent; across senders they overlap.
 */
export async function sendRounds(baseUrl: string, senders: string[], texts: string[], sent: SentBySender = new Map()): Promise<SentBySender> {
  for (const text of texts) {
    await Promise.all(
      senders.map(async (from) => {
        const id = uniqueWamid();
        const reply = await postMetaText(baseUrl, { id, from, text });
        if (reply.status !== 200) throw new Error(`the ingest answered ${reply.status} for ${from}`);
        sent.set(from, [...(sent.get(from) ?? []), id]);
      }),
    );
  }
  return sent;
}

export function sendersNamed(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}${String(index).padStart(4, '0')}`);
}

export function allIds(sent: SentBySender): string[] {
  return [...sent.values()].flat();
}

export async function unfinished(sql: Sql, ids: string[]): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM webhook_messages WHERE message_id = ANY(${ids}) AND status NOT IN ('processed', 'unmatched')`;
  return row!.n;
}

/** Claims beyond one per message: each is a redelivery (a requeue raised its delivery count). */
export async function extraClaims(sql: Sql, ids: string[]): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT coalesce(sum(attempts - 1), 0)::integer AS n FROM webhook_messages WHERE message_id = ANY(${ids})`;
  return row!.n;
}

/** For numbered orders ("1 coke", "2 coke", ...): each sender's orders and provider calls, in the order sent. */
export async function orderAndCallsPerSender(sql: Sql, fake: FakeProvider, sent: SentBySender) {
  const calls = fake.calls();
  const problems: string[] = [];
  for (const [from, ids] of sent) {
    const orders = await sql<{ message_id: string }[]>`SELECT message_id FROM orders WHERE phone_number = ${from} ORDER BY id`;
    if (orders.map((o) => o.message_id).join() !== ids.join()) problems.push(`${from}: orders out of order or not one per message`);
    const quantities = calls
      .filter((call) => (call.body as { to?: string }).to === from)
      .map((call) => (call.body as { text: { body: string } }).text.body.match(/: (\d+) ×/)?.[1]);
    const expected = ids.map((_, index) => String(index + 1));
    if (quantities.join() !== expected.join()) problems.push(`${from}: calls ${quantities.join()} instead of ${expected.join()}`);
  }
  return problems;
}

/** Shards each worker holds, and whether together they cover every shard exactly once. */
export function split(workers: RunningWorker[], shardCount: number): { sizes: number[]; coversEachOnce: boolean } {
  const owned = workers.map((worker) => worker.coordinator.owned());
  const all = owned.flat().sort((a, b) => a - b);
  return { sizes: owned.map((shards) => shards.length), coversEachOnce: all.join() === Array.from({ length: shardCount }, (_, i) => i).join() };
}

/** Every shard has exactly one consumer on the broker. */
export async function oneConsumerPerShard(worker: RunningWorker): Promise<boolean> {
  const counts = await Promise.all(worker.topology.shards.map((shard) => worker.broker.inspect(shard.queue)));
  return counts.every((count) => count?.consumerCount === 1);
}

export function counter(worker: RunningWorker, outcome: string): Promise<number> {
  return worker.metrics.workerMessages.get().then((metric) => metric.values.find((v) => v.labels.outcome === outcome)?.value ?? 0);
}

/** Calls to one recipient that began before the one before them was answered. */
export function overlapping(calls: RecordedCall[]): number[] {
  return calls.flatMap((call, index) => {
    const previous = calls[index - 1];
    return previous && (previous.answeredAt === undefined || call.receivedAt < previous.answeredAt) ? [index] : [];
  });
}
