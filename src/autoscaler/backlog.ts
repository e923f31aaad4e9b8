import type { Sql } from '../db/client';

/**
 * An outbox row the ingest's relay has not published within this long waits on the broker (an
 * outage, a resource alarm) and then on a sweep: no worker can reach its message yet. A row
 * normally lives milliseconds, and under saturation well under a second. While any row has
 * waited so long, every row waits: the rows taken in during the last seconds of an outage are
 * no more reachable than the old ones, and counted, at a high intake they alone kept the
 * workers at their maximum for the whole outage.
 */
const UNPUBLISHED_AFTER_SECONDS = 10;

/**
 * The backlog: every message ready for a worker, in a queue (or its outbox on the way there)
 * or held by a worker. Not the ones parked in a retry tier until their next try: more workers
 * would only wait beside them, so a provider outage does not scale the workers up. Nor the
 * ones the relay cannot publish: during a RabbitMQ outage the outbox grows with every message
 * taken in, and workers, which cannot consume either, would be scaled to their maximum for
 * nothing; those messages count once published. The broker shows only the ready ones (up to
 * WORK_SHARDS × WORKER_PREFETCH more can be held), while Postgres knows all of them.
 * wagate_unfinished(status), not the plain condition, so that the partial index
 * webhook_messages_unfinished_ready_idx serves this count as an index-only scan (migrations
 * 013 and 018 say why). The unpublished ones are taken off the count only where their message
 * was counted, queued and not waiting: an outbox row can outlive its publish (a confirm that
 * came late, a message replayed), and its message be held by a worker or finished already.
 * The outbox is small except during such an outage, and read without an index.
 */
export async function countBacklog(sql: Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT greatest(0,
      (SELECT count(*) FROM webhook_messages
       WHERE wagate_unfinished(status) AND (status = 'processing' OR waiting_until IS NULL OR waiting_until <= now()))
      - (SELECT count(*) FROM outbox o JOIN webhook_messages m ON m.id = o.webhook_message_id
         WHERE EXISTS (SELECT 1 FROM outbox WHERE created_at < now() - make_interval(secs => ${UNPUBLISHED_AFTER_SECONDS}))
           AND m.status = 'queued' AND (m.waiting_until IS NULL OR m.waiting_until <= now())))::integer AS n`;
  return row!.n;
}
