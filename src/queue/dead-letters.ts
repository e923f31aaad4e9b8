import type { ConfirmChannel, GetMessage } from 'amqplib';
import { ATTEMPT_HEADER, DEAD_AT_HEADER, LAST_ERROR_HEADER, NOT_BEFORE_HEADER, UNSENT_ATTEMPTS_HEADER, unsentAttemptsIn, withoutBrokerHeaders } from './headers';
import { queueMessageSchema, type QueueMessage } from './message';
import { publishRouted } from './publish-routed';
import { routingKeyFor, type Topology } from './topology';

export interface DeadLetter {
  id: string;
  attempts: number;
  lastError: string;
  deadAt: string | null;
}

/**
 * The letters in the queue when a pass begins, read one by one. Only those: in a storm of dead
 * letters (an expired provider token dead-letters every message) new ones could come as fast
 * as the pass reads, and it held every letter unacked, and the lock, without end. A later
 * letter of an erased customer is dropped by the worker that dead-letters it.
 */
async function* lettersThere(channel: ConfirmChannel, topology: Topology): AsyncGenerator<GetMessage> {
  const { messageCount } = await channel.checkQueue(topology.deadQueue);
  for (let taken = 0; taken < messageCount; taken += 1) {
    const message = await channel.get(topology.deadQueue);
    if (!message) return;
    yield message;
  }
}

/** Reads every dead letter without removing it: nothing is acked, and all are given back. */
export async function listDeadLetters(channel: ConfirmChannel, topology: Topology): Promise<DeadLetter[]> {
  const letters: DeadLetter[] = [];
  try {
    for await (const message of lettersThere(channel, topology)) letters.push(describe(message));
  } finally {
    giveBack(channel);
  }
  return letters;
}

/**
 * Gives back every letter taken and not acked, with a nack that requeues. Left to the
 * channel's close, each return counts as a failed delivery on RabbitMQ 4.3 and later, and a
 * quorum queue drops a message after 20 of them (its default delivery limit; nothing stands
 * behind the dead-letter queue to take it): the 21st `dlq list` would have lost every letter.
 * A requeueing nack does not count there. (RabbitMQ 4.0 to 4.2 count every return: the README
 * gives the policy that lifts the limit on the dead-letter queue.)
 */
function giveBack(channel: ConfirmChannel): void {
  try {
    channel.nackAll(true);
  } catch {
    // The channel is closed already, and its close gave them back.
  }
}

/** What became of one dead letter's replay. */
export type ReplayOutcome = 'replayed' | 'skipped' | 'settling' | 'unroutable';

/**
 * Reopens a dead message's records so the worker takes it again, around `republish`, which
 * puts its copy back on its work queue ('replayed'). 'settling' while a worker may still be
 * recording it dead (a later replay takes it). 'skipped' when they are finished, erased
 * or gone, and nothing is published; 'unroutable' when no queue took the copy, and a dead
 * record is put back as it was, with its reason.
 * `unsentAttempts`: the letter's tokens of attempts that marked its reply and called nothing
 * (UNSENT_ATTEMPTS_HEADER); the replayed copy goes without them.
 */
export type ReopenDeadMessage = (message: QueueMessage, unsentAttempts: readonly string[], republish: () => Promise<boolean>) => Promise<ReplayOutcome>;

/**
 * Puts dead letters (all, or those with the given AMQP ids) back on their sender's work
 * queue with a fresh attempt count. Each is republished with a confirm before it is acked
 * from the dead-letter queue, while its records are reopened (`reopen`) so the worker
 * takes it again. Each dead letter present when it starts is replayed at most once.
 */
export async function replayDeadLetters(
  channel: ConfirmChannel,
  topology: Topology,
  reopen: ReopenDeadMessage,
  ids?: string[],
): Promise<ReplayReport> {
  const replayed: string[] = [];
  const skipped: string[] = [];
  const settling: string[] = [];
  const unroutable: string[] = [];
  // Only what is there now: a replayed message that fails again while this runs lands at
  // the back of the queue, and taking it again would replay it twice in one go.
  try {
    await replayTaken(channel, topology, reopen, ids, { replayed, skipped, settling, unroutable });
  } finally {
    giveBack(channel);
  }
  return { replayed, skipped, settling, unroutable };
}

async function replayTaken(
  channel: ConfirmChannel,
  topology: Topology,
  reopen: ReopenDeadMessage,
  ids: string[] | undefined,
  { replayed, skipped, settling, unroutable }: ReplayReport,
): Promise<void> {
  for await (const message of lettersThere(channel, topology)) {
    const id = String(message.properties.messageId ?? '');
    if (ids && !ids.includes(id)) continue;
    const payload = queueMessageSchema.safeParse(safeJson(message.content));
    if (!payload.success) {
      skipped.push(id || '(no id)');
      continue;
    }
    const headers = { ...withoutBrokerHeaders(message.properties.headers, [LAST_ERROR_HEADER, DEAD_AT_HEADER, NOT_BEFORE_HEADER, UNSENT_ATTEMPTS_HEADER]), [ATTEMPT_HEADER]: 0 };
    const options = { persistent: true, mandatory: true as const, messageId: id, contentType: 'application/json', headers };
    const republish = () => publishRouted(channel, topology.exchange, routingKeyFor(topology, payload.data.senderKey), message.content, options);
    const outcome = await reopen(payload.data, unsentAttemptsIn(message.properties.headers), republish);
    // Skipped: its record was cleaned up, erased or finished meanwhile, and the worker would
    // skip it. Unroutable: no queue took the copy. Left unacked, the letter is given back to the
    // dead-letter queue.
    if (outcome === 'skipped') skipped.push(id);
    else if (outcome === 'settling') settling.push(id);
    else if (outcome === 'unroutable') unroutable.push(id);
    else {
      channel.ack(message);
      replayed.push(id);
    }
  }
}

export interface ReplayReport {
  replayed: string[];
  /** Not wagate messages, or records finished, erased or cleaned up: for `dlq purge`, not a replay. */
  skipped: string[];
  /** Records a worker changed in the last moments (it may still be recording them dead): for a later replay. */
  settling: string[];
  /** No queue took them (a shard queue deleted by a reshard under way): still dead letters. */
  unroutable: string[];
}


/**
 * Records a purged letter's message dead before its letter goes (orders/purge-dead-message.ts):
 * a record left 'queued' or 'processing' would be put back on the queue by `requeue-stuck`.
 * False while a worker may still be recording it: the letter stays.
 */
export type RecordPurged = (message: QueueMessage) => Promise<boolean>;

export interface PurgeReport {
  dropped: string[];
  /** Letters whose message a worker may still be recording dead: kept, to purge again in a minute. */
  left: string[];
}

/**
 * Drops the dead letters there when it starts, each once `recordPurged` has recorded its
 * message (a letter that is no wagate message is dropped as it is), letter by letter rather
 * than with a queue purge, which would leave their records unread. A failure stops it with
 * the letters not yet dropped given back.
 */
export async function purgeDeadLetters(channel: ConfirmChannel, topology: Topology, recordPurged: RecordPurged): Promise<PurgeReport> {
  return dropEach(channel, topology, () => true, recordPurged);
}

/**
 * Drops the dead letters with the given AMQP ids (as `dlq list` shows them), whatever their
 * body, and gives every other letter back: the ones an operator judged can never succeed go,
 * the recoverable ones not yet replayed stay.
 */
export async function purgeDeadLettersById(channel: ConfirmChannel, topology: Topology, ids: ReadonlySet<string>, recordPurged: RecordPurged): Promise<PurgeReport> {
  return dropEach(channel, topology, (id) => ids.has(id), recordPurged);
}

async function dropEach(channel: ConfirmChannel, topology: Topology, picked: (id: string) => boolean, recordPurged: RecordPurged): Promise<PurgeReport> {
  const report: PurgeReport = { dropped: [], left: [] };
  try {
    for await (const message of lettersThere(channel, topology)) {
      const id = String(message.properties.messageId ?? '');
      if (!picked(id)) continue;
      const payload = queueMessageSchema.safeParse(safeJson(message.content));
      if (payload.success && !(await recordPurged(payload.data))) {
        report.left.push(id);
        continue;
      }
      channel.ack(message);
      report.dropped.push(id || '(no id)');
    }
  } finally {
    giveBack(channel);
  }
  return report;
}

/**
 * Acks (drops) the dead letters that `matches` picks and gives the rest back. A letter that
 * is not a wagate message is not ours to judge and stays.
 */
export async function dropDeadLetters(channel: ConfirmChannel, topology: Topology, matches: (message: QueueMessage) => boolean): Promise<number> {
  let dropped = 0;
  try {
    for await (const message of lettersThere(channel, topology)) {
      const payload = queueMessageSchema.safeParse(safeJson(message.content));
      if (payload.success && matches(payload.data)) {
        channel.ack(message);
        dropped += 1;
      }
    }
  } finally {
    giveBack(channel);
  }
  return dropped;
}

function describe(message: GetMessage): DeadLetter {
  const headers = message.properties.headers ?? {};
  const brokerDeath = Array.isArray(headers['x-death']) ? 'the broker dead-lettered it (delivery limit)' : 'unknown';
  return {
    id: String(message.properties.messageId ?? '(no id)'),
    // The header counts retries; the first try comes before them.
    attempts: Number(headers[ATTEMPT_HEADER] ?? 0) + 1,
    lastError: String(headers[LAST_ERROR_HEADER] ?? brokerDeath),
    deadAt: headers[DEAD_AT_HEADER] ? String(headers[DEAD_AT_HEADER]) : null,
  };
}

function safeJson(content: Buffer): unknown {
  try {
    return JSON.parse(content.toString('utf8'));
  } catch {
    return null;
  }
}
