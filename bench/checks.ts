import type { Sql } from '../src/db/client';
import { countWorkMessages, type BenchEnvironment } from './environment';
import type { PhaseResult } from './scenarios';

const DRAIN_TIMEOUT_MS = 30_000;
const POLL_MS = 5;

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * Every measured request to a durable server was answered 200, and some were: the latencies and
 * rates count every answer, so a server that refused everything quickly (a wrong secret, a 503
 * while it sheds load) would otherwise meet the SLO, with nothing acknowledged to check.
 */
export function everyRequestAcknowledged(label: string, phases: readonly PhaseResult[]): Check {
  const total = (pick: (phase: PhaseResult) => number) => phases.reduce((sum, phase) => sum + pick(phase), 0);
  const [acked, refused, unanswered] = [total((p) => p.ok), total((p) => p.non2xx), total((p) => p.errors)];
  return {
    name: `${label}: every measured request answered 200`,
    ok: acked > 0 && refused === 0 && unanswered === 0,
    detail: `${acked} answered 200, ${refused} answered otherwise, ${unanswered} not answered`,
  };
}

/** Time from the end of a load phase until the outbox is empty, in ms; null if it never empties. */
export async function waitForOutboxDrain(sql: Sql): Promise<number | null> {
  const started = performance.now();
  while (performance.now() - started < DRAIN_TIMEOUT_MS) {
    const [row] = await sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM outbox`;
    if (row!.n === 0) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return null;
}

/**
 * The guarantees the numbers rest on: no 200 without a row, every id new (else the bench
 * measured duplicates or rate limiting, which are cheaper), and every row on the queue.
 */
export async function verifyDurability(env: BenchEnvironment, ackedIds: string[]): Promise<Check[]> {
  const { sql } = env;
  const [missing] = await sql<{ n: number }[]>`
    SELECT count(*)::integer AS n FROM unnest(${ackedIds}::text[]) AS acked(id)
    WHERE NOT EXISTS (SELECT 1 FROM webhook_messages m WHERE m.webhook_source = 'whatsapp' AND m.message_id = acked.id)`;
  const [rows] = await sql<{ total: number; queued: number; duplicates: number }[]>`
    SELECT count(*)::integer AS total,
           count(*) FILTER (WHERE status = 'queued')::integer AS queued,
           coalesce(sum(duplicate_count), 0)::integer AS duplicates
    FROM webhook_messages`;
  const [outbox] = await sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM outbox`;
  const onQueue = await waitForQueueCount(env, rows!.queued);
  return [
    { name: 'every 200 has a webhook_messages row', ok: missing!.n === 0, detail: `${ackedIds.length} acked, ${missing!.n} without a row` },
    { name: 'every row is a new, queued message', ok: rows!.queued === rows!.total && rows!.duplicates === 0,
      detail: `${rows!.total} rows, ${rows!.queued} queued, ${rows!.duplicates} duplicate hits` },
    { name: 'outbox drained', ok: outbox!.n === 0, detail: `${outbox!.n} rows left` },
    { name: 'work queues hold every queued row', ok: onQueue === rows!.queued,
      detail: `${onQueue === null ? 'work queues missing' : `${onQueue} messages on the queues`}, ${rows!.queued} queued rows` },
  ];
}

/** Confirmed publishes can take a moment to show in a quorum queue's count, so poll briefly. */
export async function waitForQueueCount(env: BenchEnvironment, expected: number): Promise<number | null> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const count = await countWorkMessages(env.amqpUrl, env.topology);
    if (count === expected || Date.now() > deadline) return count;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
