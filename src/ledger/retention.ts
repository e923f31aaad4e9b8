import { FUTURE_SKEW_SECONDS, type Config } from '../config';
import type { Sql, SqlFragment } from '../db/client';
import { runWithDeadlockRetry } from './commit-guards';
import { foldReceipts } from './fold-receipts';

const BATCH_ROWS = 1000;
/** Rows that are still on their way (queued, in the outbox, being processed) are never removed. */
const FINISHED = ['processed', 'unmatched', 'dead', 'malformed', 'replay_rejected', 'rate_limited', 'erased'];
/** A message still on its way: a worker, a stuck requeue or a replay of its letter may process it yet. */
const UNFINISHED = ['queued', 'processing'];
/** Receipts this recent are checked against their replies again: a daily run with one run missed. */
const RECEIPT_REPAIR_DAYS = 3;

export interface CleanupOptions {
  days: number;
  personalDataDays: number;
  /** Orders, their items and replies go after this many days (ORDER_RETENTION_DAYS). */
  orderDays: number;
  /** Told each step's count as it ends: a run stopped midway (its Job's deadline) has said what it did. */
  onStep?(what: string, count: number): void;
}

export type CleanupReport = Record<string, number>;

/** Refuses a ledger retention that would forget dedupe keys while Meta may still replay. */
export function checkRetention(config: Config, days: number): string | null {
  if (!Number.isInteger(days) || days < 1) return '--days must be a whole number of days';
  if (days * 86400 < config.REPLAY_WINDOW_SECONDS + FUTURE_SKEW_SECONDS) {
    return `--days ${days} is shorter than the replay window (${config.REPLAY_WINDOW_SECONDS} s) plus 5 minutes: replayed messages would no longer be recognised as duplicates`;
  }
  if (days > config.ORDER_RETENTION_DAYS) {
    return `--days ${days} is longer than ORDER_RETENTION_DAYS (${config.ORDER_RETENTION_DAYS}): messages would outlive their orders and replies, and a dead-letter replay of one would make a second order`;
  }
  return null;
}

/**
 * A retention of days, in seconds: Postgres subtracts days from a timestamptz in calendar days of
 * the session's time zone, and a day that a change to summer time shortened would delete keys
 * an hour early, inside the replay window that the settings' check counted in 24-hour days.
 */
function secondsIn(days: number): number {
  return days * 86_400;
}

/**
 * Retention, in short batches so that no lock is held for long. Meta dedupe keys go after
 * `days`; Twilio's are kept for the full RETENTION_DAYS, because Twilio signs no timestamp
 * and dedupe is its only replay protection. Personal data goes sooner, after
 * `personalDataDays`: the rows stay for statistics, their bodies and names do not.
 */
export async function runCleanup(sql: Sql, config: Config, options: CleanupOptions): Promise<CleanupReport> {
  const twilioDays = Math.max(options.days, config.RETENTION_DAYS);
  const report: CleanupReport = {};
  const done = (what: string, count: number) => {
    report[what] = count;
    options.onStep?.(what, count);
  };
  // Personal data first: a run cut short (a backlog of months after the job stopped, its
  // deadline reached) still keeps the promise of PERSONAL_DATA_RETENTION_DAYS, and the rows
  // that stay longer for statistics and dedupe are deleted on the nights after.
  const personal = { sql, days: options.personalDataDays };
  done('personal_data_messages', await clearInBatches({
    ...personal, table: 'webhook_messages', set: sql`payload = NULL, raw_body = NULL`,
    still: sql`status = ANY(${FINISHED}) AND (payload IS NOT NULL OR raw_body IS NOT NULL)`,
  }));
  done('personal_data_receipts', await clearInBatches({ ...personal, table: 'message_statuses', set: sql`payload = NULL`, still: sql`payload IS NOT NULL` }));
  done('personal_data_replies', await clearInBatches({
    ...personal, table: 'outbound_messages', set: sql`body = NULL`, still: sql`body IS NOT NULL AND status IN ('sent', 'failed', 'unknown')`,
  }));
  done('personal_data_orders', await clearInBatches({ ...personal, table: 'orders', set: sql`customer_name = NULL, note = NULL`, still: sql`(customer_name IS NOT NULL OR note IS NOT NULL)` }));
  done('receipts_folded', await foldReceiptsLeftBehind(sql));
  // Checked again on the row as it is when locked: one that release or a dlq replay put back
  // on its way after the batch chose it must stay (Postgres re-checks only these outer
  // conditions on a row changed meanwhile, not the ones of the subquery that chose it).
  const stillFinished = sql`status = ANY(${FINISHED})`;
  // A Meta key also waits for its message's own timestamp to pass: one signed more than 5
  // minutes ahead (replay_rejected) would, replayed once its key were gone, fall inside the
  // window, whose check allows for 5 minutes ahead only.
  const old = { sql, table: 'webhook_messages' } as const;
  done('webhook_messages_whatsapp', await deleteInBatches({
    ...old, days: options.days,
    which: sql`webhook_source = 'whatsapp' AND (message_timestamp IS NULL OR message_timestamp < now() - make_interval(secs => ${secondsIn(options.days)}))
      AND status = ANY(${FINISHED}) AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.webhook_message_id = t.id)`,
    still: stillFinished,
  }));
  done('webhook_messages_twilio', await deleteInBatches({
    ...old, days: twilioDays,
    which: sql`webhook_source = 'twilio' AND status = ANY(${FINISHED}) AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.webhook_message_id = t.id)`,
    still: stillFinished,
  }));
  // A receipt's key dedupes it as a message's key does: Twilio's status callbacks are signed
  // without a timestamp too, so their keys stay as long as Twilio's message keys.
  let receipts = 0;
  for (const [source, days] of [['whatsapp', options.days], ['twilio', twilioDays]] as const) {
    receipts += await deleteInBatches({
      sql, table: 'message_statuses', days,
      which: sql`webhook_source = ${source} AND (status_timestamp IS NULL OR status_timestamp < now() - make_interval(secs => ${secondsIn(days)}))`,
      still: sql`true`,
    });
  }
  done('message_statuses', receipts);
  // The age checked again on the row deleted: one its sender's new message (or the worker's
  // language) renewed while the delete waited on it is that renewed row, and stays.
  done('webhook_rate_limits', await deleteIdle({ sql, days: options.days, table: 'webhook_rate_limits', key: 'phone_number', lastUsed: 'last_request_at' }));
  // A customer's number, as the key of the language they last wrote in: kept as long as their messages.
  done('customer_languages', await deleteIdle({ sql, days: options.days, table: 'customer_languages', key: 'sender_key', lastUsed: 'updated_at' }));
  for (const [what, count] of Object.entries(await removeOldOrders(sql, options.orderDays))) done(what, count);
  return report;
}

type WalkedTable = 'webhook_messages' | 'message_statuses' | 'outbound_messages' | 'orders';

interface Clearing {
  sql: Sql;
  table: WalkedTable;
  days: number;
  /** What clearing sets. */
  set: SqlFragment;
  /** Which rows still hold personal data to clear. */
  still: SqlFragment;
}

/** Clears personal data from rows older than `days` (see walkInBatches). */
function clearInBatches({ sql, table, days, set, still }: Clearing): Promise<number> {
  return walkInBatches({ sql, table, days, which: still, act: sql`UPDATE ${sql(table)} SET ${set} WHERE id IN (SELECT id FROM picked) AND ${still} RETURNING id` });
}

interface Deletion {
  sql: Sql;
  table: WalkedTable;
  days: number;
  /** Which of the rows older than `days` go; the row is `t`. */
  which: SqlFragment;
  /** Checked again on the row as it is when the delete has locked it. */
  still: SqlFragment;
}

/** Deletes rows older than `days` (see walkInBatches). */
function deleteInBatches({ sql, table, days, which, still }: Deletion): Promise<number> {
  return walkInBatches({ sql, table, days, which, act: sql`DELETE FROM ${sql(table)} WHERE id IN (SELECT id FROM picked) AND ${still} RETURNING id` });
}

interface Walk {
  sql: Sql;
  table: WalkedTable;
  days: number;
  /** Which of the rows older than `days` to pick; the row is `t`. */
  which: SqlFragment;
  /** The statement that acts on the rows picked (the CTE `picked`), returning one row per row acted on. */
  act: SqlFragment;
}

/**
 * Acts on rows older than `days`, in batches taken in (created_at, id) order from where the
 * last one ended. Batches that each started from the oldest row read again, for every batch,
 * the old rows that stay: cleared rows (deleted only at the ledger's retention), Twilio's keys
 * (kept longer than Meta's), messages still on their way. A day's 100,000 replies to clear
 * meant a hundred reads of the months of cleared ones, and the CronJob's deadline came before
 * the later steps. Here one run reads the rows that stay once. A row passed while it was still
 * kept (a message finishing meanwhile, a reply leaving retry) goes at the next run.
 */
async function walkInBatches({ sql, table, days, which, act }: Walk): Promise<number> {
  // The cursor travels as text: a JS Date would drop created_at's microseconds, and '-infinity'
  // is none. ISO 8601 with its offset, whatever the session's DateStyle: 'SQL' style writes a
  // zone's abbreviation (IST), which reads back as another zone and moved the cursor past due rows.
  let after = { createdAt: '-infinity', id: '0' };
  let total = 0;
  for (;;) {
    // A full batch is one that picked BATCH_ROWS, not one that acted on as many: a picked row
    // that changed while the statement waited on it (a release, an erase) is left, and counting
    // only the rows acted on ended the run there, every later row waiting for the next day's
    // run. The cursor moves past what was picked, for the same reason.
    // A batch meets an erase or a worker locking the same rows in another order now and then:
    // its one statement is tried again rather than failing the night's run.
    const [batch] = await runWithDeadlockRetry(() => sql<{ n: number; picked: number; created_at: string | null; id: string | null }[]>`
      WITH picked AS (
        SELECT t.id, t.created_at FROM ${sql(table)} t
        WHERE t.created_at < now() - make_interval(secs => ${secondsIn(days)})
          AND t.created_at >= ${after.createdAt}::text::timestamptz AND (t.created_at, t.id) > (${after.createdAt}::text::timestamptz, ${after.id}::text::bigint)
          AND ${which}
        ORDER BY t.created_at, t.id LIMIT ${BATCH_ROWS}),
      acted AS (${act}),
      last AS (SELECT created_at, id FROM picked ORDER BY created_at DESC, id DESC LIMIT 1)
      SELECT (SELECT count(*) FROM acted)::integer AS n, (SELECT count(*) FROM picked)::integer AS picked,
             (SELECT to_json(created_at) #>> '{}' FROM last) AS created_at, (SELECT id::text FROM last) AS id`);
    total += batch!.n;
    if (batch!.picked < BATCH_ROWS) return total;
    after = { createdAt: batch!.created_at!, id: batch!.id! };
  }
}

/**
 * Replies still on their way (pending, sending, retry) are kept; order_items go with their order.
 * So are the order and replies of a message still on its way, one left processing by a dead
 * write that did not land, say, with its letter waiting for a replay: gone, the replay would
 * write a second order and confirm it, or confirm an order the shop no longer has. They go at
 * the first run after the message finished. (A dead message's payload goes at the
 * personal-data retention, before its order, and a replay leaves it dead.)
 */
async function removeOldOrders(sql: Sql, orderDays: number): Promise<CleanupReport> {
  const stillOnItsWay = (source: SqlFragment, messageId: SqlFragment) => sql`EXISTS (
    SELECT 1 FROM webhook_messages m WHERE m.webhook_source = ${source} AND m.message_id = ${messageId} AND m.status = ANY(${UNFINISHED}))`;
  const outbound_messages = await deleteInBatches({
    sql, table: 'outbound_messages', days: orderDays,
    which: sql`t.status IN ('sent', 'failed', 'unknown') AND NOT ${stillOnItsWay(sql`t.webhook_source`, sql`t.inbound_message_id`)}`,
    still: sql`status IN ('sent', 'failed', 'unknown')`,
  });
  const orders = await deleteInBatches({
    sql, table: 'orders', days: orderDays,
    which: sql`NOT ${stillOnItsWay(sql`t.webhook_source`, sql`t.message_id`)}`,
    still: sql`true`,
  });
  return { outbound_messages, orders };
}

/**
 * A receipt and its reply's settle that commit at once each fold the other in after their
 * commit (foldReceipts); a process that dies between its commit and its fold can leave a
 * recent receipt that never reached its reply. Moves such replies forward: walks the recent
 * receipts in batches and looks up each one's reply. A join of the receipts to the replies was
 * planned as a scan of every reply kept (ORDER_RETENTION_DAYS of them) once a day's receipts
 * outnumbered a few thousand.
 */
async function foldReceiptsLeftBehind(sql: Sql): Promise<number> {
  // The cursor travels as text, as in walkInBatches. The walk ends at the receipts there were
  // when it began: those the ingest writes meanwhile it folds in itself, and chasing them kept
  // a busy shop's run going.
  const [{ until }] = await sql<[{ until: string }]>`SELECT to_json(now()) #>> '{}' AS until`;
  let after = { createdAt: '-infinity', id: '0' };
  let total = 0;
  for (;;) {
    // Ordered by the columns, not the output's id, which is text: '100000' sorted before
    // '99990', and the cursor, compared as a number, skipped the rest.
    const receipts = await sql<{ source: 'whatsapp' | 'twilio'; providerMessageId: string; createdAt: string; id: string }[]>`
      SELECT r.webhook_source AS source, r.message_id AS "providerMessageId", to_json(r.created_at) #>> '{}' AS "createdAt", r.id::text AS id
      FROM message_statuses r
      WHERE r.created_at > now() - make_interval(secs => ${secondsIn(RECEIPT_REPAIR_DAYS)}) AND r.created_at <= ${until}::text::timestamptz
        AND r.created_at >= ${after.createdAt}::text::timestamptz AND (r.created_at, r.id) > (${after.createdAt}::text::timestamptz, ${after.id}::text::bigint)
      ORDER BY r.created_at, r.id LIMIT ${BATCH_ROWS}`;
    // A fold that meets the ingest's or a settle's on the same receipts may deadlock; they retry, and so does this.
    total += await runWithDeadlockRetry(() => foldReceipts(sql, receipts));
    if (receipts.length < BATCH_ROWS) return total;
    after = receipts.at(-1)!;
  }
}

interface IdleDeletion {
  sql: Sql;
  days: number;
  table: 'webhook_rate_limits' | 'customer_languages';
  /** The sender's column of the (webhook_source, sender) key. */
  key: 'phone_number' | 'sender_key';
  /** When the row was last renewed. */
  lastUsed: 'last_request_at' | 'updated_at';
}

/**
 * Deletes the rows of senders silent for `days`, checking the age again on the row deleted:
 * one renewed while the delete waited on it is that renewed row, and stays. Batches go on in
 * key order from where the last ended: each one started again from the table's start read the
 * rows of active senders, and those just deleted (dead until vacuum), once per batch, and
 * millions of senders after a long pause of the job took most of its hour.
 */
async function deleteIdle({ sql, days, table, key, lastUsed }: IdleDeletion): Promise<number> {
  const idle = sql`${sql(lastUsed)} < now() - make_interval(secs => ${secondsIn(days)})`;
  let after = { source: '', sender: '' };
  let total = 0;
  for (;;) {
    // Tried again after a deadlock, as walkInBatches's batches are.
    const [batch] = await runWithDeadlockRetry(() => sql<{ n: number; picked: number; source: string | null; sender: string | null }[]>`
      WITH picked AS (
        SELECT webhook_source, ${sql(key)} AS sender FROM ${sql(table)}
        WHERE (webhook_source, ${sql(key)}) > (${after.source}, ${after.sender}) AND ${idle}
        ORDER BY webhook_source, ${sql(key)} LIMIT ${BATCH_ROWS}),
      gone AS (
        DELETE FROM ${sql(table)} WHERE (webhook_source, ${sql(key)}) IN (SELECT webhook_source, sender FROM picked) AND ${idle}
        RETURNING 1),
      last AS (SELECT webhook_source, sender FROM picked ORDER BY webhook_source DESC, sender DESC LIMIT 1)
      SELECT (SELECT count(*) FROM gone)::integer AS n, (SELECT count(*) FROM picked)::integer AS picked,
             (SELECT webhook_source FROM last) AS source, (SELECT sender FROM last) AS sender`);
    total += batch!.n;
    if (batch!.picked < BATCH_ROWS) return total;
    after = { source: batch!.source!, sender: batch!.sender! };
  }
}
