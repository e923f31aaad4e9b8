import type { Sql } from '../db/client';
import type { OutboundRow } from '../orders/record-decision';
import type { QueueMessage } from '../queue/message';
import { shardOf } from '../queue/topology';

/** What the pipeline needs to know about a message it has claimed, read with the claim itself. */
export interface Claim {
  /** The message's reply, when an earlier attempt already took its decision. */
  reply: OutboundRow | null;
  /** The language the customer last wrote in, if any. */
  language: string | null;
  /** Remembered more than a day ago: used again, it is remembered anew, so cleanup keeps it while the customer writes. */
  languageStale: boolean;
  /** catalog_version as of the claim, for the worker's in-memory catalog. */
  catalogVersion: string;
}

/**
 * A message whose shard another worker holds now: this worker's heartbeat lapsed (Postgres was
 * out of its reach, say) and the shard was taken over while the message waited in hand. It must
 * not be processed here, or its sender would run on two workers at once.
 */
export const NOT_OURS = Symbol('shard taken over');

/** Who claims: only messages of shards recorded as this worker's are claimed. */
export interface ShardFence {
  queuePrefix: string;
  memberId: string;
  shardCount: number;
  /** How long Postgres lets a fenced transaction sit idle before ending its session (OwnerFence.idleLimitMs). */
  idleLimitMs?: number;
}

interface ClaimRow {
  ord: number;
  not_ours: boolean;
  reply_id: string | null;
  kind: OutboundRow['kind'];
  status: OutboundRow['status'];
  recipient: string;
  business_number: string;
  body: string;
  order_id: string | null;
  attempts: number;
  language: string | null;
  language_stale: boolean | null;
  catalog_version: string;
}

/**
 * Claims messages for processing ('processing', one more attempt) in one statement, and reads
 * with it what the pipeline would otherwise ask for one query at a time: each message's reply
 * (the marker that its decision was taken), its customer's remembered language and the
 * catalog's version. Null for a message already finished (a redelivery), erased or cleaned up
 * since it was queued. The reads share the claim's snapshot, as the separate reads that
 * followed the claim's commit saw the same rows or later ones; the record step checks again
 * under the message's row lock.
 *
 * With a fence, a message is claimed only while its shard is recorded as the claiming worker's,
 * in the same statement, so that a worker cut off from Postgres past its liveness timeout does
 * not start, once it is back, messages it held while another worker took the shard over and
 * went on with their senders' next ones. Those answer NOT_OURS.
 *
 * `attempts`: each delivery's try (its x-wagate-attempt header, 0 before any retry). A delivery
 * of a try below the one the message was last handed to a retry tier for, while that tier's
 * wait is under way, is a stale copy (its ack was lost after the hand-over was confirmed) and is
 * not claimed: null, as for a finished message, and the tier's copy comes back when its wait is
 * over. Past the wait it is claimed: a replay or requeue by a release that does not reset the
 * record (0.3.5) sends a copy without a try, and it must not be skipped for good. Nor is it
 * skipped while the wait is not the one written with the try (retry_attempt_until): such a
 * release's own hand-over to a tier rewrites the wait and leaves an earlier life's try in place.
 */
export async function claimMessages(sql: Sql, messages: readonly QueueMessage[], fence?: ShardFence,
  attempts: readonly number[] = messages.map(() => 0)): Promise<(Claim | null | typeof NOT_OURS)[]> {
  const shards = messages.map((m) => (fence ? shardOf(m.senderKey, fence.shardCount) : 0));
  const owned = fence
    ? sql`EXISTS (SELECT 1 FROM work_shard_owners w
                  WHERE w.queue_prefix = ${fence.queuePrefix} AND w.shard = i.shard AND w.owner = ${fence.memberId})`
    : sql`true`;
  const rows = await sql<ClaimRow[]>`
    WITH input AS (
      SELECT * FROM unnest(${messages.map((m) => m.source)}::text[], ${messages.map((m) => m.messageId)}::text[],
                           ${messages.map((m) => m.senderKey)}::text[], ${shards}::integer[], ${attempts}::integer[])
             WITH ORDINALITY AS i(source, message_id, sender_key, shard, attempt, ord)),
    ours AS (SELECT i.* FROM input i WHERE ${owned}),
    claimed AS (
      UPDATE webhook_messages m SET status = 'processing', attempts = m.attempts + 1, updated_at = now()
      FROM ours i
      WHERE m.webhook_source = i.source AND m.message_id = i.message_id AND m.status IN ('queued', 'processing')
        AND (m.retry_attempt IS NULL OR i.attempt >= m.retry_attempt OR m.waiting_until IS NULL OR m.waiting_until <= now()
             OR m.waiting_until IS DISTINCT FROM m.retry_attempt_until)
      RETURNING i.ord)
    SELECT i.ord::integer AS ord, false AS not_ours, o.id::text AS reply_id, o.kind, o.status, o.recipient, o.business_number, o.body,
           o.order_id::text AS order_id, o.attempts, l.language, l.updated_at < now() - interval '1 day' AS language_stale,
           (SELECT version::text FROM catalog_version) AS catalog_version
    FROM claimed c
    JOIN input i ON i.ord = c.ord
    LEFT JOIN outbound_messages o ON o.webhook_source = i.source AND o.inbound_message_id = i.message_id
    LEFT JOIN customer_languages l ON l.webhook_source = i.source AND l.sender_key = i.sender_key
    UNION ALL
    SELECT i.ord::integer, true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM input i WHERE NOT EXISTS (SELECT 1 FROM ours WHERE ours.ord = i.ord)`;
  const claims: (Claim | null | typeof NOT_OURS)[] = messages.map(() => null);
  for (const row of rows) {
    if (row.not_ours) {
      claims[row.ord - 1] = NOT_OURS;
      continue;
    }
    const reply = row.reply_id === null ? null : {
      id: row.reply_id, kind: row.kind, status: row.status, recipient: row.recipient, business_number: row.business_number,
      body: row.body, order_id: row.order_id, attempts: row.attempts,
    };
    claims[row.ord - 1] = { reply, language: row.language, languageStale: row.language_stale === true, catalogVersion: row.catalog_version };
  }
  return claims;
}
