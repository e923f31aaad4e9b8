import { INGEST_APPLICATION_NAME, transaction, type Sql, type SqlFragment } from '../db/client';
import { runWithDeadlockRetry } from '../ledger/commit-guards';
import { META_USER_ID } from '../ledger/addresses';
import { senderKeysOf } from '../ledger/sender-keys';
import type { QueueMessage } from '../queue/message';
import { ERASED, NOT_SENT_ERASED } from './erasure';

/**
 * Drops the dead letters `matches` picks and counts them; opens its broker channel only when
 * called. `addresses` are what they are matched on: the number and the user ids found for it.
 */
export type DeadLetterDropper = (matches: (message: QueueMessage) => boolean, addresses: readonly string[]) => Promise<number>;

/**
 * Data-subject erasure. Rows stay (dedupe keys, order totals, statistics) but every
 * personal field is removed or replaced: bodies, raw payloads, names, numbers, reply texts,
 * error texts (a provider's may quote the number),
 * and copies of the customer's messages waiting in the dead-letter queue. Messages not yet
 * finished become 'erased', so the worker drops their queue copies instead of turning them
 * into an order and a reply, which would write the personal data back. The database is
 * erased first and commits on its own, so a broker that is away cannot hold it up.
 */
/**
 * What a raw body is searched for: a number by its digits, 8 or more (a shorter run would match
 * other customers' bodies), and a Meta user id as it is written. A user id's letters are part of
 * it ("US.a1b2c3d4e5f6g7h8"): its digits alone are not in the body, and would match others'.
 */
function bodyNeedles(addresses: readonly string[]): string[] {
  const needles = addresses.flatMap((address) => {
    const bare = address.replace(/^whatsapp:/, '').replace(/^\+/, '');
    return META_USER_ID.test(bare) || /^\d{8,}$/.test(bare) ? [bare] : [];
  });
  return [...new Set(needles)];
}

export interface EraseOptions {
  /** The ingest's DB_STATEMENT_TIMEOUT_MS: how long one of its statements may still run. */
  ingestStatementTimeoutMs?: number;
  /** Told why what the ingest wrote while the erase ran could not be checked; else the erase throws it. */
  onLateWritesUnchecked?(error: Error): void;
}

export async function eraseCustomer(sql: Sql, phone: string, dropDeadLetters: DeadLetterDropper | null, options: EraseOptions = {}): Promise<Record<string, number>> {
  let addresses: string[] = [];
  const started = await databaseNow(sql);
  // Tried again after a deadlock: a worker settling one of the customer's replies locks its row
  // before the message's, the erase the other way round.
  const first = await runWithDeadlockRetry(() => transaction(sql, async (tx) => {
    // The number, plus the Meta user ids its messages and orders (and so its rate limit) were keyed on.
    addresses = await senderKeysOf(tx, phone);
    const erased = await eraseRows(tx, addresses);
    addresses = erased.addresses;
    return erased;
  }));
  // Read at once: a message recorded after this was sent after the erase, and is answered.
  const committed = await databaseNow(sql);
  const report: Record<string, number> = { ...first.counts };
  const isTheCustomers = (message: QueueMessage) => addresses.includes(message.from) || addresses.includes(message.senderKey);
  report.dead_letters = dropDeadLetters ? await dropDeadLetters(isTheCustomers, addresses) : 0;
  // Last: what it waits for must not hold up the dead letters, nor its failure hide them.
  const waitMs = Math.max(INGEST_CATCH_UP_MS, (options.ingestStatementTimeoutMs ?? 0) + INGEST_CATCH_UP_MARGIN_MS);
  const held = Object.values(first.counts).some((count) => count > 0);
  const window = { from: started, until: committed, waitMs };
  const late: LateCounts = await eraseWrittenMeanwhile(sql, addresses, first.replyIds, window).catch((error: Error) => {
    // Nothing of theirs held (erased already, a wrong number, or the customer's first message
    // still on its way): where the ingest's sessions cannot be seen, that first message goes
    // unchecked, and a second run after an unchecked one, which finds nothing, is not refused.
    if (!held && error instanceof IngestSessionsUnseen) return { late_messages: 0, late_malformed_bodies: 0, late_receipts: 0 };
    if (!options.onLateWritesUnchecked) throw error;
    options.onLateWritesUnchecked(error);
    return { late_messages: Number.NaN, late_malformed_bodies: Number.NaN, late_receipts: Number.NaN };
  });
  // A late message a worker dead-lettered before the late pass erased its row stays 'dead', so
  // no worker drops its letter, and the sweep above came too early for it. One dead-lettered
  // after the late pass finds its row erased, and its worker drops the letter itself.
  // Reported apart: a sweep that failed reads NaN, and must not hide the other's count. Not
  // tried again when the first could not read the queue: the rerun the CLI asks for does both.
  const lateDeadLetters = dropDeadLetters === null || late.late_messages === 0 ? 0
    : Number.isNaN(late.late_messages) || Number.isNaN(report.dead_letters) ? Number.NaN
      : await dropDeadLetters(isTheCustomers, addresses);
  return { ...report, ...late, late_dead_letters: lateDeadLetters };
}

async function databaseNow(sql: Sql): Promise<string> {
  const [now] = await sql<{ at: string }[]>`SELECT clock_timestamp()::text AS at`;
  return now!.at;
}

/**
 * Every personal field of the customer's rows, in one transaction. `given`: the customer's
 * keys as senderKeysOf found them. Answers them widened by the Meta user ids the erased messages
 * and orders carried: a customer whose user id changed wrote under two, and an erase by the new
 * one found the number through the messages, but not the old id, which only the rate-limit and
 * language rows carry, and those kept it. User ids only: senderKeysOf has found the numbers a
 * user id reaches, and a number taken from the rows of a user id found through a recycled number
 * would be its earlier owner's new one, another customer's.
 */
async function eraseRows(tx: Sql, given: string[]): Promise<{ counts: Record<string, number>; replyIds: string[]; addresses: string[] }> {
  const messages = await tx<CarriedKeys[]>`
    UPDATE webhook_messages w SET payload = NULL, raw_body = NULL, phone_number = ${ERASED}, sender_key = ${ERASED}, last_error = NULL, updated_at = now(),
      status = CASE WHEN w.status IN ('queued', 'processing', 'rate_limited') THEN ${ERASED} ELSE w.status END
    FROM (SELECT id, ARRAY[phone_number, sender_key, payload ->> 'from', payload ->> 'senderKey'] AS keys FROM webhook_messages
          WHERE phone_number = ANY(${given}) OR sender_key = ANY(${given})
             OR (payload ->> 'from') = ANY(${given}) OR (payload ->> 'senderKey') = ANY(${given})
          FOR UPDATE) before
    WHERE w.id = before.id
    RETURNING before.keys`;
  // Unfinished messages are not published any more (the relay drops such rows too).
  await tx`DELETE FROM outbox o USING webhook_messages m
           WHERE o.webhook_message_id = m.id AND m.status = ${ERASED} AND m.payload IS NULL`;
  const orders = await tx<CarriedKeys[]>`
    UPDATE orders o SET phone_number = ${ERASED}, sender_key = ${ERASED}, customer_name = NULL, note = NULL, updated_at = now()
    FROM (SELECT id, ARRAY[phone_number, sender_key] AS keys FROM orders
          WHERE phone_number = ANY(${given}) OR sender_key = ANY(${given}) FOR UPDATE) before
    WHERE o.id = before.id
    RETURNING before.keys`;
  const addresses = widened(given, [...messages, ...orders]);
  // A malformed row keeps the raw body it came in, which may carry this customer's number (and
  // name and texts) without naming them in its own columns: a Meta envelope that holds other
  // messages too, or a Twilio callback addressed to them. Matched on the number's digits, and
  // on their user ids as written; a body kept as base64 (text Postgres cannot store, bytes that
  // are not UTF-8) is searched in its decoded bytes.
  const malformed = await eraseMalformedBodies(tx, addresses, tx`TRUE`);
  // A reply not yet sent never will be (its message is erased, or its worker finds the
  // recipient erased): failed now, rather than left waiting for a copy that is dropped.
  const replies = await tx<{ id: string }[]>`
    UPDATE outbound_messages SET recipient = ${ERASED}, body = NULL, updated_at = now(),
      last_error = CASE WHEN status IN ('pending', 'retry') THEN ${NOT_SENT_ERASED} END,
      status = CASE WHEN status IN ('pending', 'retry') THEN 'failed' ELSE status END
    WHERE recipient = ANY(${addresses})
    RETURNING id::text`;
  const receipts = await tx`
    UPDATE message_statuses SET recipient = NULL, payload = NULL WHERE recipient = ANY(${addresses})`;
  const limits = await tx`DELETE FROM webhook_rate_limits WHERE phone_number = ANY(${addresses})`;
  const languages = await tx`DELETE FROM customer_languages WHERE sender_key = ANY(${addresses})`;
  return {
    counts: { messages: messages.count, malformed_bodies: malformed.count, orders: orders.count, replies: replies.count, receipts: receipts.count,
      rate_limits: limits.count, reply_languages: languages.count },
    replyIds: replies.map((reply) => reply.id),
    addresses,
  };
}

/** The keys an erased row carried before it was erased: number, sender key, and its payload's. */
interface CarriedKeys {
  keys: (string | null)[];
}

function widened(given: readonly string[], rows: readonly CarriedKeys[]): string[] {
  const userIds = rows.flatMap((row) => row.keys).filter((key): key is string => key !== null && META_USER_ID.test(key));
  return [...new Set([...given, ...userIds])];
}

/** Clears the raw bodies of the malformed rows `within` picks that carry one of the addresses. */
async function eraseMalformedBodies(tx: Sql, addresses: readonly string[], within: SqlFragment): Promise<{ count: number }> {
  const needles = bodyNeedles(addresses);
  return tx`
    UPDATE webhook_messages SET raw_body = NULL, last_error = NULL, updated_at = now()
    WHERE status = 'malformed' AND raw_body IS NOT NULL AND ${within} AND EXISTS (SELECT 1 FROM unnest(${needles}::text[]) AS n WHERE strpos(raw_body, n) > 0
      OR (raw_body LIKE 'base64:%' AND position(convert_to(n, 'UTF8') IN decode(substr(raw_body, 8), 'base64')) > 0))`;
}

/** The least the erase waits for ingest statements begun before its commit, and its margin past their statement timeout. */
const INGEST_CATCH_UP_MS = 60_000;
const INGEST_CATCH_UP_MARGIN_MS = 5_000;

/** What the erase's late pass cleared: rows the ingest wrote while the first pass ran. */
interface LateCounts {
  late_messages: number;
  late_malformed_bodies: number;
  late_receipts: number;
}

/** When the erase's first pass began and committed, and the longest an ingest statement may run. */
interface EraseWindow {
  from: string;
  until: string;
  waitMs: number;
}

/**
 * What the ingest wrote while the erase ran, judged against the rows as its statement's
 * snapshot showed them (not yet erased), to commit after the erase: a message of the customer,
 * recorded with the number, the name and the text, and published to be answered; a receipt for
 * one of their replies, with the number and the payload. The ingest writes in single statements:
 * once no ingest statement begun before the erase's commit is running, every such row is
 * committed. The late messages are those recorded before the commit (through the created_at
 * index: at most an ingest statement's time before the erase began), with the order and the reply
 * a worker may have made of them meanwhile; receipts are found through the replies' provider
 * ids (the receipts' key, no scan of the table), once the late pass's own commit is in too.
 */
async function eraseWrittenMeanwhile(sql: Sql, addresses: string[], replyIds: readonly string[], window: EraseWindow): Promise<LateCounts> {
  await waitForIngestStatementsBefore(sql, window.until, window.waitMs);
  const late = await runWithDeadlockRetry(() => transaction(sql, (tx) => eraseLateRows(tx, addresses, window)));
  if (late.replyIds.length > 0) await waitForIngestStatementsBefore(sql, await databaseNow(sql), window.waitMs);
  const replies = [...replyIds, ...late.replyIds];
  const cleared = replies.length === 0 ? { count: 0 } : await sql`
    UPDATE message_statuses s SET recipient = NULL, payload = NULL
    FROM outbound_messages o
    WHERE o.id = ANY(${replies}::bigint[]) AND s.webhook_source = o.webhook_source
      AND (s.message_id = o.provider_message_id OR s.message_id = ANY(o.earlier_provider_message_ids))
      AND (s.recipient IS NOT NULL OR s.payload IS NOT NULL)`;
  return { late_messages: late.messages, late_malformed_bodies: late.malformedBodies, late_receipts: cleared.count };
}

/**
 * The second pass: the customer's messages recorded while the first ran, and what was made of
 * them. `addresses` gains the keys those messages were recorded under: a first message keyed on
 * a Meta user id the first pass never saw (its rate-limit and language rows, its dead letter).
 */
async function eraseLateRows(tx: Sql, addresses: string[], window: EraseWindow): Promise<{ messages: number; malformedBodies: number; replyIds: string[] }> {
  // The times go back as text: postgres.js sends a parameter typed timestamptz through a JS Date,
  // which keeps milliseconds only, and a message recorded in the last one before the commit was missed.
  const meanwhile = tx`created_at >= ${window.from}::text::timestamptz - make_interval(secs => ${window.waitMs / 1000}) AND created_at < ${window.until}::text::timestamptz`;
  const late = await tx<{ webhook_source: string; message_id: string; keys: (string | null)[] }[]>`
    WITH found AS MATERIALIZED (
      SELECT id, ARRAY[phone_number, sender_key, payload ->> 'from', payload ->> 'senderKey'] AS keys FROM webhook_messages
      WHERE ${meanwhile}
        AND (phone_number = ANY(${addresses}) OR sender_key = ANY(${addresses})
         OR (payload ->> 'from') = ANY(${addresses}) OR (payload ->> 'senderKey') = ANY(${addresses}))
      FOR UPDATE)
    UPDATE webhook_messages m SET payload = NULL, raw_body = NULL, phone_number = ${ERASED}, sender_key = ${ERASED}, last_error = NULL, updated_at = now(),
      status = CASE WHEN m.status IN ('queued', 'processing', 'rate_limited') THEN ${ERASED} ELSE m.status END
    FROM found f WHERE m.id = f.id
    RETURNING m.webhook_source, m.message_id, f.keys`;
  const keys = late.flatMap((row) => row.keys).filter((key): key is string => key !== null && key !== ERASED);
  addresses.push(...new Set(keys.filter((key) => !addresses.includes(key))));
  // A malformed part names no sender in its columns (a status that failed its schema, a whole
  // envelope), so its body is searched as in the first pass.
  const malformedBodies = (await eraseMalformedBodies(tx, addresses, meanwhile)).count;
  if (late.length === 0) return { messages: 0, malformedBodies, replyIds: [] };
  const sources = late.map((row) => row.webhook_source);
  const ids = late.map((row) => row.message_id);
  await tx`DELETE FROM outbox o USING webhook_messages m
           WHERE o.webhook_message_id = m.id AND m.status = ${ERASED} AND m.payload IS NULL`;
  await tx`
    UPDATE orders SET phone_number = ${ERASED}, sender_key = ${ERASED}, customer_name = NULL, note = NULL, updated_at = now()
    FROM unnest(${sources}::text[], ${ids}::text[]) AS l(source, message_id)
    WHERE orders.webhook_source = l.source AND orders.message_id = l.message_id`;
  const replies = await tx<{ id: string }[]>`
    UPDATE outbound_messages SET recipient = ${ERASED}, body = NULL, updated_at = now(),
      last_error = CASE WHEN status IN ('pending', 'retry') THEN ${NOT_SENT_ERASED} END,
      status = CASE WHEN status IN ('pending', 'retry') THEN 'failed' ELSE status END
    FROM unnest(${sources}::text[], ${ids}::text[]) AS l(source, message_id)
    WHERE outbound_messages.webhook_source = l.source AND outbound_messages.inbound_message_id = l.message_id
    RETURNING outbound_messages.id::text AS id`;
  await tx`DELETE FROM webhook_rate_limits WHERE phone_number = ANY(${addresses})`;
  await tx`DELETE FROM customer_languages WHERE sender_key = ANY(${addresses})`;
  return { messages: late.length, malformedBodies, replyIds: replies.map((reply) => reply.id) };
}

class IngestSessionsUnseen extends Error {
  constructor() {
    super('what the ingest\'s sessions run cannot be seen (another database role without pg_read_all_stats, or track_activities off); for later erases, run erase as the role the ingest uses, or GRANT pg_read_all_stats to this one');
  }
}

/**
 * Waits until no ingest statement begun before `since` is running. What the ingest's sessions
 * run cannot be seen from another role without pg_read_all_stats, nor with track_activities off:
 * refused then, rather than waiting for nothing. A pooler may append to the application name
 * (PgBouncer's application_name_add_host).
 */
async function waitForIngestStatementsBefore(sql: Sql, since: string, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const [ingest] = await sql<{ running: number; unseen: number }[]>`
      SELECT count(*) FILTER (WHERE state = 'active' AND query_start < ${since}::text::timestamptz)::integer AS running,
             count(*) FILTER (WHERE query = '<insufficient privilege>' OR state = 'disabled')::integer AS unseen
      FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE ${`${INGEST_APPLICATION_NAME}%`}`;
    if (ingest!.unseen > 0) throw new IngestSessionsUnseen();
    if (ingest!.running === 0) return;
    if (Date.now() > deadline) throw new Error(`ingest statements begun before the erase's commit were still running after ${Math.round(waitMs / 1000)} s; let them end first`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
