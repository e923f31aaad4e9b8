import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { type ParseArgsOptionsConfig } from 'node:util';
import type { Config } from '../config';
import { databaseFromConfig, POOL_CLOSE_TIMEOUT_SECONDS, type Sql } from '../db/client';
import { refuseSilentDatabase } from '../db/health';
import { classifyPostgresError, explainPostgresFailure } from '../db/postgres-errors';
import { startFakeProvider } from '../dev/fake-provider';
import { UsageError, WagateError } from '../errors';
import { parseOptions } from '../parse-options';
import { addressVariants, META_USER_ID, normalisePhone } from '../ledger/addresses';
import { checkRetention, runCleanup } from '../ledger/retention';
import { withDeadLetterLock } from '../ledger/dead-letter-lock';
import { storedShardCount } from '../ledger/shard-count';
import { decodeCatalogFile, importCatalog } from '../orders/catalog-import';
import { eraseCustomer } from '../orders/erase-customer';
import { DEAD_LETTER_SETTLE_SECONDS, reopenDeadMessage } from '../orders/reopen-dead-message';
import { recordPurgedMessage } from '../orders/purge-dead-message';
import { ACCEPTED_UNRECORDED, listUnknownReplies, resendReply, settleReply, type Settlement } from '../orders/reply-operations';
import { listUndeliveredReplies } from '../orders/undelivered-replies';
import { dropDeadLetters, listDeadLetters, purgeDeadLetters, purgeDeadLettersById, replayDeadLetters, type ReopenDeadMessage } from '../queue/dead-letters';
import { topologyFromConfig } from '../queue/depths';
import { queuesHoldingMessages } from '../queue/inspect-queue';
import { withoutNumbers } from '../telemetry/without-numbers';
import { groupStuckAfterMs, requeueStuckMessages } from '../ledger/stuck';
import { withOperatorChannel } from '../queue/operator-channel';
import type { Topology } from '../queue/topology';
import { replyClientFromConfig } from '../replies/from-config';
import type { Logger } from '../telemetry/logger';
import { createMetrics } from '../telemetry/metrics';
import { TWILIO_WEBHOOK_PATH } from '../webhooks/twilio';

const print = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

export async function withSql<T>(config: Config, work: (sql: Sql) => Promise<T>, statementTimeoutMs = 0): Promise<T> {
  const sql = databaseFromConfig(config, 'wagate-cli', { maxConnections: 2, statementTimeoutMs });
  try {
    // A server that takes connections and closes them (a proxy whose upstream is down) would
    // leave the command waiting without a word: postgres.js retries such a query for ever.
    await refuseSilentDatabase(sql, config.DATABASE_URL, config.DB_CONNECT_TIMEOUT_SECONDS);
    return await work(sql);
  } finally {
    await sql.end({ timeout: POOL_CLOSE_TIMEOUT_SECONDS });
  }
}

export async function productsCommand(config: Config, args: string[]): Promise<void> {
  const [action, ...rest] = args;
  if (action !== 'import') throw actionError('products', action, ['import']);
  const { values, positionals } = parseOptions({ args: rest, options: { 'deactivate-missing': { type: 'boolean' }, yes: { type: 'boolean' } }, allowPositionals: true });
  const [file, ...extra] = positionals;
  if (!file) throw new UsageError('products import needs a FILE.csv');
  if (extra.length > 0) throw new UsageError(`products import takes one FILE.csv and no options but --deactivate-missing [--yes] (got also "${extra.join(' ')}")`);
  if (values.yes && !values['deactivate-missing']) throw new UsageError('products import takes --yes only with --deactivate-missing');
  const text = readCatalogFile(file);
  const deactivateMissing = values['deactivate-missing'] === true;
  const result = await withSql(config, (sql) => importCatalog(sql, text, { deactivateMissing, allowMostOff: values.yes === true }));
  print(`imported ${result.rows} product(s): ${result.inserted} new, ${result.updated} updated, ${result.unchanged} unchanged` +
    (deactivateMissing ? `, ${result.deactivated} not in the file switched off` : ''));
  for (const { name, skus } of result.sharedNames) {
    print(`warning: ${skus.length} active products answer to "${name}" as a name or alias, case and accents aside (${skus.join(', ')}): customers who write it get a question; ` +
      'switch the old ones off by importing the whole menu with --deactivate-missing');
  }
}

function readCatalogFile(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'there is no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a folder' : (error as Error).message;
    throw new WagateError('FILE_UNREADABLE', `cannot read the catalog ${path.resolve(file)}: ${why}; check the path (relative paths start at ${process.cwd()})`);
  }
  return decodeCatalogFile(bytes);
}

/**
 * The topology an operator command works on, sharded as the running system is (the count
 * stored in Postgres), not as this shell's WORK_SHARDS says: an operator's environment often
 * leaves it at the default, and a replay routed by another count would put a sender's
 * messages on a shard whose worker does not hold the sender's others.
 */
async function operatorTopology(config: Config, sql: Sql): Promise<Topology> {
  const stored = await storedShardCount(sql, config.QUEUE_PREFIX);
  return topologyFromConfig(stored === null ? config : { ...config, WORK_SHARDS: stored });
}

/** The flags each `dlq` action takes; any other is refused before anything is touched. */
const DLQ_OPTIONS: Record<'list' | 'replay' | 'purge', ParseArgsOptionsConfig> = {
  list: {},
  replay: { id: { type: 'string', multiple: true } },
  purge: { yes: { type: 'boolean', default: false }, id: { type: 'string', multiple: true } },
};

export async function dlqCommand(config: Config, log: Logger, args: string[]): Promise<void> {
  const [action, ...rest] = args;
  if (action !== 'list' && action !== 'replay' && action !== 'purge') throw actionError('dlq', action, ['list', 'replay', 'purge']);
  // Flags first: a mistyped one is a usage error even while Postgres is down.
  const values = parseOptions({ args: rest, options: DLQ_OPTIONS[action] }).values as { id?: string[]; yes?: boolean };
  const topology = await withSql(config, (sql) => operatorTopology(config, sql));
  const broker = { url: config.AMQP_URL, topology, log };
  // One reader of the dead-letter queue at a time: see withDeadLetterLock.
  const alone = <T>(sql: Sql, work: () => Promise<T>) => withDeadLetterLock(sql, config.QUEUE_PREFIX, work);
  if (action === 'list') {
    const letters = await withSql(config, (sql) => alone(sql, () => withOperatorChannel(broker, (channel) => listDeadLetters(channel, topology))));
    if (letters.length === 0) return print('the dead-letter queue is empty');
    // A letter dead-lettered by an earlier release carries the provider's text as it came.
    for (const letter of letters) print(`${letter.id}\tattempts=${letter.attempts}\t${letter.deadAt ?? ''}\t${withoutNumbers(letter.lastError)}`);
    return;
  }
  if (action === 'replay') {
    const ids = values.id && [...new Set(values.id)];
    const result = await withSql(config, (sql) => alone(sql, () =>
      withOperatorChannel(broker, (channel) => replayDeadLetters(channel, topology, reopenForReplay(sql, config.DATABASE_URL), ids)),
    ));
    print(`replayed ${result.replayed.length} message(s)${result.skipped.length ? `; left ${result.skipped.length} in the dead-letter queue that no replay takes (not wagate messages, or records already finished, erased or cleaned up): purge them with wagate dlq purge --id: ${result.skipped.join(', ')}` : ''}`);
    if (result.unroutable.length > 0) {
      throw new WagateError('BROKER_UNAVAILABLE', `${result.unroutable.length} letter(s) stay in the dead-letter queue: no work queue took them (a shard queue missing, as during a reshard; finish it with wagate reshard), so replay again after: ${result.unroutable.join(', ')}`);
    }
    const seen = new Set([...result.replayed, ...result.skipped, ...result.settling, ...result.unroutable]);
    const missing = ids?.filter((id) => !seen.has(id)) ?? [];
    if (missing.length > 0) throw new WagateError('NOT_FOUND', `not in the dead-letter queue (see wagate dlq list): ${missing.join(', ')}`);
    if (ids && result.skipped.length > 0) throw new WagateError('OPERATION_REFUSED', `not replayed, for the reasons above: ${result.skipped.join(', ')}`);
    // Last: an id mistyped or refused beside it is named first.
    if (result.settling.length > 0) {
      throw new WagateError('RETRYABLE', `${result.settling.length} letter(s) stay in the dead-letter queue: a worker changed their record in the last ${DEAD_LETTER_SETTLE_SECONDS} s and may still be recording it dead, so replay again in a minute: ${result.settling.join(', ')}`);
    }
    return;
  }
  if (action === 'purge') {
    const ids = values.id && new Set(values.id);
    const what = ids ? `the ${ids.size} chosen letter(s) from` : 'every message in';
    if (!values.yes && !(await confirm(`Delete ${what} ${topology.deadQueue}? This cannot be undone. [y/N] `))) {
      throw new UsageError('purge cancelled; pass --yes to purge without asking');
    }
    const { dropped, left } = await withSql(config, (sql) => alone(sql, () => withOperatorChannel(broker, (channel) => ids
      ? purgeDeadLettersById(channel, topology, ids, (message) => recordPurgedMessage(sql, message))
      : purgeDeadLetters(channel, topology, (message) => recordPurgedMessage(sql, message)))));
    print(`purged ${dropped.length} message(s)${ids && dropped.length ? `: ${dropped.join(', ')}` : ''}`);
    const missing = ids ? [...ids].filter((id) => !dropped.includes(id) && !left.includes(id)) : [];
    if (missing.length > 0) throw new WagateError('NOT_FOUND', `not in the dead-letter queue (see wagate dlq list): ${missing.join(', ')}`);
    if (left.length > 0) {
      throw new WagateError('RETRYABLE', `kept, since a worker may still be recording their message dead: ${left.join(', ')}; purge them again in a minute`);
    }
  }
}

/**
 * reopenDeadMessage for `dlq replay`, whose pass runs on a broker channel: there a Postgres
 * that went away (a reset, a refused connection) read as the broker's failure, and the
 * operator was sent to RabbitMQ. It names the database, and what is left to do. The
 * republish's own failure is the broker's, and stays so.
 */
export function reopenForReplay(sql: Sql, databaseUrl: string): ReopenDeadMessage {
  return (message, unsentAttempts, republish) => {
    const publishFailures = new Set<unknown>();
    const publishing = () => republish().catch((error: unknown) => {
      publishFailures.add(error);
      throw error;
    });
    return reopenDeadMessage(sql, message, unsentAttempts, publishing).catch((error: unknown) => {
      if (publishFailures.has(error) || classifyPostgresError(error) !== 'DATABASE_UNAVAILABLE') throw error;
      throw new WagateError('DATABASE_UNAVAILABLE', `${explainPostgresFailure(error, databaseUrl)}; the letters not replayed yet stay in the dead-letter queue: run wagate dlq replay again once it answers`, { cause: error });
    });
  };
}

export async function cleanupCommand(config: Config, args: string[]): Promise<void> {
  const { values } = parseOptions({ args, options: { days: { type: 'string' } } });
  const days = values.days === undefined ? config.RETENTION_DAYS : Number(values.days);
  const refusal = checkRetention(config, days);
  if (refusal) throw new UsageError(refusal);
  // Each step's line as it ends, so that a run its Job's deadline stops has said how far it got.
  await withSql(config, (sql) => runCleanup(sql, config, {
    days, personalDataDays: config.PERSONAL_DATA_RETENTION_DAYS, orderDays: config.ORDER_RETENTION_DAYS, onStep: (what, count) => print(`${what}\t${count}`),
  }));
}

/**
 * The one customer of `erase` or `release`: a number, normalised, or a Meta user id as typed.
 * A second --phone would otherwise silently replace the first, and an erasure asked for two
 * people would cover one.
 */
export function phoneOption(command: string, phones: string[] | undefined): string {
  if (!phones?.length) throw new UsageError(`${command} needs --phone`);
  if (phones.length > 1) throw new UsageError(`${command} takes one --phone; run it once per number`);
  const given = phones[0]!.trim();
  const customer = normalisePhone(given) ?? (META_USER_ID.test(given) ? given : null);
  if (!customer) {
    throw new UsageError(`--phone must be the customer's number in international form, such as +15551234567 (spaces, dashes, dots and brackets are ignored; a leading 00 counts as +), or Meta's user id, such as US.13491208655302741918`);
  }
  return customer;
}

/**
 * The customer's other keys the erase found, each once: user ids as written, numbers in
 * +digits form, none a form of `phone` or of one listed. They were found through the rows just
 * erased, so a second run by `phone` alone would not find them again: given a user id, the
 * number its older messages were keyed on, which their dead letters carry, is one of them.
 */
function othersFound(phone: string, addresses: readonly string[]): string[] {
  // A number by its digits, whatever its prefix ("whatsapp:", "+"); a user id as written.
  const keyOf = (address: string) => (META_USER_ID.test(address) ? address : address.replace(/^whatsapp:/, '').replace(/^\+/, ''));
  const formsOf = (address: string) => (META_USER_ID.test(address) ? [address] : addressVariants(address).map(keyOf));
  const listed: string[] = [];
  const covered = new Set(formsOf(phone));
  for (const address of addresses) {
    if (covered.has(keyOf(address))) continue;
    listed.push(META_USER_ID.test(address) ? address : `+${keyOf(address)}`);
    for (const form of formsOf(address)) covered.add(form);
  }
  return listed;
}

export async function eraseCommand(config: Config, log: Logger, args: string[]): Promise<void> {
  const { values } = parseOptions({ args, options: { phone: { type: 'string', multiple: true } } });
  const phone = phoneOption('erase', values.phone);
  // The database part commits first; a broker that cannot be reached must not hide it.
  let deadLettersUnread: Error | null = null;
  let lateWritesUnchecked: Error | null = null;
  let erasedAddresses: readonly string[] = [];
  const rerunFor = (addresses: readonly string[]) => `run wagate erase --phone for each of ${[phone, ...othersFound(phone, addresses)].join(', ')}`;
  const report = await withSql(config, async (sql) => {
    const topology = await operatorTopology(config, sql);
    return eraseCustomer(sql, phone, (matches, addresses) => {
      erasedAddresses = addresses;
      // Said before the wait for the queue's lock (up to a minute) and the pass, when a second
      // run by number would not find everything: a run stopped there has committed the
      // database part, and its report would never be printed.
      if (othersFound(phone, addresses).length > 0) {
        print(`the database part is done; now dropping the customer's dead letters (if this stops before its report, ${rerunFor(addresses)})`);
      }
      return withDeadLetterLock(sql, config.QUEUE_PREFIX, () =>
        withOperatorChannel({ url: config.AMQP_URL, topology, log }, (channel) => dropDeadLetters(channel, topology, matches))).catch((error: Error) => {
        deadLettersUnread = error;
        return Number.NaN;
      });
    }, {
      ingestStatementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
      onLateWritesUnchecked: (error) => {
        lateWritesUnchecked = error;
      },
    });
  });
  for (const [what, count] of Object.entries(report)) print(`${what}\t${Number.isNaN(count) ? 'not read' : count}`);
  // A second run finds the late messages and receipts by the number (their replies are erased already).
  const writesAgain = (error: Error) =>
    `messages and receipts the ingest wrote while the erase ran could not be checked (${error.message}): ${rerunFor(erasedAddresses)} again, which clears them`;
  if (deadLettersUnread) {
    const error = deadLettersUnread as Error;
    const alsoReceipts = lateWritesUnchecked ? `; and ${writesAgain(lateWritesUnchecked)} now` : '';
    throw new WagateError(error instanceof WagateError ? error.code : 'BROKER_UNAVAILABLE',
      `the customer's data in the database is erased (above), but the dead-letter queue could not be read (${error.message}): once that is mended, ${rerunFor(erasedAddresses)} to drop their dead letters${alsoReceipts}`);
  }
  if (lateWritesUnchecked) throw new WagateError('RETRYABLE', `the customer is erased (above), but ${writesAgain(lateWritesUnchecked)}`);
  if (Object.values(report).every((count) => count === 0)) print(`nothing held for ${phone}: erased already, or check the number`);
}

export async function repliesCommand(config: Config, args: string[]): Promise<void> {
  const [action, ...rest] = args;
  if (action === 'unknown') {
    // Takes nothing: an --id here would otherwise be ignored and every reply listed.
    parseOptions({ args: rest, options: {} });
    const rows = await withSql(config, listUnknownReplies);
    if (rows.length === 0) return print('no replies with an unknown outcome');
    for (const row of rows) print(`${row.id}\t${row.source}\t${row.inbound_message_id}\t${shownReplyError(row.last_error)}`);
    return;
  }
  if (action === 'undelivered') {
    const { values } = parseOptions({ args: rest, options: { hours: { type: 'string' } } });
    const hours = values.hours === undefined ? 24 : Number(values.hours);
    if (!Number.isInteger(hours) || hours < 1 || hours > 24 * 366) {
      throw new UsageError(`--hours ${values.hours} is not a number of hours from 1 to ${24 * 366}`);
    }
    const rows = await withSql(config, (sql) => listUndeliveredReplies(sql, hours));
    if (rows.length === 0) return print(`no sent replies reported undelivered in the last ${hours} hours`);
    print('id\tsource\tinbound message\tprovider error\tfailed at\tcustomer-service window\tresend');
    for (const row of rows) {
      const error = row.error_code === null ? 'not kept' : withoutNumbers([row.error_code, row.error_title].filter(Boolean).join(' '));
      const window = row.window_open_until ? `open until ${row.window_open_until.toISOString()}` : row.window;
      const resend = row.resendable ? 'possible' : 'text removed';
      print([row.id, row.source, row.inbound_message_id, error, row.failed_at?.toISOString() ?? '-', window, resend].join('\t'));
    }
    return;
  }
  if (action === 'resend') {
    const { values } = parseOptions({ args: rest, options: { id: { type: 'string' } } });
    if (!values.id) throw new UsageError('replies resend needs --id (see wagate replies unknown and wagate replies undelivered)');
    replyId(values.id);
    const result = await withSql(config, (sql) => resendReply(sql, values.id!, replyClientFromConfig(config, TWILIO_WEBHOOK_PATH), createMetrics('cli')));
    // A script's `&& echo resent` must not take a maybe for a yes: resent blindly, it may reach the customer twice.
    if (result === 'unknown') {
      throw new WagateError('RETRYABLE', `the provider's answer does not say whether reply ${values.id} went out (a 5xx without a code, or no answer in time); it is unknown again: check the provider's console before resending it, then wagate replies settle --id ${values.id} --as sent|failed`);
    }
    return print(`reply ${values.id}: ${result}`);
  }
  if (action === 'settle') {
    const { values } = parseOptions({ args: rest, options: { id: { type: 'string' }, as: { type: 'string' }, 'provider-id': { type: 'string' } } });
    if (!values.id || (values.as !== 'sent' && values.as !== 'failed')) {
      throw new UsageError('replies settle needs --id ID and --as sent|failed (what the provider says happened), and with sent, if the console shows it, --provider-id ID');
    }
    replyId(values.id);
    const providerId = values['provider-id'] ?? null;
    const receipt = await withSql(config, (sql) => settleReply(sql, values.id!, values.as as Settlement, providerId));
    if (providerId === null) return print(`reply ${values.id}: settled as ${values.as}`);
    return print(`reply ${values.id}: settled as sent, as provider message ${providerId}; its receipts: ${receipt ?? 'none yet'}`);
  }
  throw actionError('replies', action, ['unknown', 'undelivered', 'resend', 'settle']);
}

/** A command's action missing or misspelt: says which ones it has. */
function actionError(command: string, action: string | undefined, actions: string[]): UsageError {
  const choices = actions.join(', ');
  return new UsageError(action === undefined ? `${command} needs an action: ${choices}` : `${command} has no action "${action}"; its actions: ${choices}`);
}

/** Reply ids are the numbers `wagate replies unknown` lists. */
function replyId(id: string): void {
  if (!/^[0-9]{1,18}$/.test(id)) throw new UsageError(`--id ${id} is not a reply id: use a number from wagate replies unknown or wagate replies undelivered`);
}

/**
 * Puts stuck messages back in the outbox. The tiers of earlier delays with messages waiting are
 * asked of the broker; unreachable, every tier recorded counts, which can only requeue less.
 */
export async function requeueStuckCommand(config: Config): Promise<void> {
  const tierQueue = (delayMs: number) => topologyFromConfig({ ...config, RETRY_DELAYS_MS: [delayMs] }).retryTiers[0]!.queue;
  let unasked = '';
  const holding = async (delaysMs: number[]) => {
    const queues = await queuesHoldingMessages(config.AMQP_URL, delaysMs.map(tierQueue), 'wagate-requeue-stuck').catch((error: Error) => {
      unasked = `; the broker could not be asked which earlier tiers still hold messages (${error.message}), so every one recorded counted`;
      return null;
    });
    return queues === null ? delaysMs : delaysMs.filter((delayMs) => queues.includes(tierQueue(delayMs)));
  };
  const { requeued, threshold } = await withSql(config, async (sql) => {
    const found = await groupStuckAfterMs(sql, config.QUEUE_PREFIX, config.RETRY_DELAYS_MS, holding);
    return { requeued: await requeueStuckMessages(sql, found.stuckAfterMs), threshold: found };
  });
  const earlier = unasked ? 'an earlier, longer retry tier recorded for the group' : 'an earlier, longer retry tier of the group, with messages waiting';
  const tier = threshold.longestTierMs > Math.max(...config.RETRY_DELAYS_MS) ? earlier : 'the longest tier of RETRY_DELAYS_MS';
  print(`requeued ${requeued} stuck message(s), untouched for more than ${minutes(threshold.stuckAfterMs)} ` +
    `(${tier}, ${minutes(threshold.longestTierMs)}, and an hour)${unasked}; running ingest processes publish them`);
}

const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

/**
 * The fake providers, checking the credentials a worker in this environment would send (its
 * WHATSAPP_ACCESS_TOKEN; TWILIO_ACCOUNT_SID with the first TWILIO_AUTH_TOKEN), as the real ones
 * do: a worker set up with another token is refused there too, not only in production. Any
 * credentials pass for what is unset.
 */
export async function fakeProviderCommand(config: Config, args: string[]): Promise<{ stop(): Promise<void> }> {
  // Loopback unless told otherwise: in a pod behind a Service (a staging gateway under load), `--host 0.0.0.0`.
  const { values } = parseOptions({ args, options: { port: { type: 'string', default: '4010' }, host: { type: 'string', default: '127.0.0.1' } } });
  const port = Number(values.port);
  if (!/^[0-9]+$/.test(values.port) || port > 65_535) throw new UsageError(`--port ${values.port} is not a port: use a number from 0 to 65535 (0: any free port)`);
  if (isIP(values.host) === 0) throw new UsageError(`--host ${values.host} is not an IP address: use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)`);
  const fake = await startFakeProvider({
    port,
    host: values.host,
    metaAccessToken: config.WHATSAPP_ACCESS_TOKEN,
    twilioAccountSid: config.TWILIO_ACCOUNT_SID,
    twilioAuthToken: config.TWILIO_AUTH_TOKEN[0],
  });
  const checked = [config.WHATSAPP_ACCESS_TOKEN && 'WHATSAPP_ACCESS_TOKEN', config.TWILIO_ACCOUNT_SID && 'TWILIO_ACCOUNT_SID', config.TWILIO_AUTH_TOKEN[0] && 'TWILIO_AUTH_TOKEN'].filter(Boolean);
  const everywhere = values.host === '0.0.0.0' || values.host === '::' ? ' (every interface)' : '';
  print(`fake Graph API and Twilio REST listening on ${fake.url}${everywhere} (calls: ${fake.url}/_fake/calls; ` +
    `${checked.length > 0 ? `checking ${checked.join(', ')} from this environment` : 'any credentials accepted'})`);
  return { stop: () => fake.close() };
}

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}

/**
 * A reply's last error for the terminal: a provider's words may quote the customer's number,
 * kept in Postgres, where `wagate erase` reaches it, but not printed. wagate's note of a resend
 * the provider took is printed whole: its ids are what the operator settles it with.
 */
function shownReplyError(lastError: string | null): string {
  if (lastError === null) return '';
  return lastError.startsWith(ACCEPTED_UNRECORDED) ? lastError : withoutNumbers(lastError);
}
