import amqp, { type Channel, type GetMessage } from 'amqplib';
import { transaction, type Sql } from '../db/client';
import { withoutBrokerHeaders } from '../queue/headers';
import { queueMessageSchema } from '../queue/message';
import { assertTopology, routingKeyFor, type Topology } from '../queue/topology';
import { DEAD_AT_HEADER, LAST_ERROR_HEADER } from '../worker/consumer';
import { ATTEMPT_HEADER, NOT_BEFORE_HEADER } from '../worker/retry-plan';

export interface DeadLetter {
  id: string;
  attempts: number;
  lastError: string;
  deadAt: string | null;
}

/**
 * Reads every dead letter without removing it: nothing is acked, and closing the channel
 * puts them all back.
 */
export async function listDeadLetters(amqpUrl: string, topology: Topology): Promise<DeadLetter[]> {
  return withChannel(amqpUrl, topology, false, async (channel) => {
    const letters: DeadLetter[] = [];
    for (let message = await channel.get(topology.deadQueue); message; message = await channel.get(topology.deadQueue)) {
      letters.push(describe(message));
    }
    return letters;
  });
}

/**
 * Puts dead letters (all, or those with the given AMQP ids) back on their sender's work
 * queue with a fresh attempt count. Each is republished with a confirm before it is acked
 * from the dead-letter queue, and its records are reopened so the worker takes it again:
 * the message back to queued, a reply that failed permanently back to pending (the
 * operator decided to try again). A reply already sent stays sent, so nothing is duplicated.
 * Each dead letter present when it starts is replayed at most once.
 */
export async function replayDeadLetters(sql: Sql, amqpUrl: string, topology: Topology, ids?: string[]): Promise<{ replayed: string[]; skipped: string[] }> {
  return withChannel(amqpUrl, topology, true, async (channel) => {
    const replayed: string[] = [];
    const skipped: string[] = [];
    // Only what is there now: a replayed message that fails again while this runs lands at
    // the back of the queue, and taking it again would replay it twice in one go.
    const { messageCount } = await channel.checkQueue(topology.deadQueue);
    for (let taken = 0; taken < messageCount; taken += 1) {
      const message = await channel.get(topology.deadQueue);
      if (!message) break;
      const id = String(message.properties.messageId ?? '');
      if (ids && !ids.includes(id)) continue;
      const payload = queueMessageSchema.safeParse(safeJson(message.content));
      if (!payload.success) {
        skipped.push(id || '(no id)');
        continue;
      }
      const { source, messageId, senderKey } = payload.data;
      const reopened = await transaction(sql, async (tx) => {
        const messages = await tx`UPDATE webhook_messages SET status = 'queued', last_error = NULL, updated_at = now()
                 WHERE webhook_source = ${source} AND message_id = ${messageId} AND status IN ('dead', 'processing', 'queued')`;
        if (messages.count === 0) return 0;
        await tx`UPDATE outbound_messages SET status = 'pending', updated_at = now()
                 WHERE webhook_source = ${source} AND inbound_message_id = ${messageId} AND status = 'failed'`;
        return messages.count;
      });
      // 'queued' is taken too: an earlier replay that committed but could not publish left it so.
      // Its record was cleaned up, erased or finished meanwhile: the worker would skip it.
      if (reopened === 0) {
        skipped.push(id);
        continue;
      }
      const headers = { ...withoutBrokerHeaders(message.properties.headers, [LAST_ERROR_HEADER, DEAD_AT_HEADER, NOT_BEFORE_HEADER]), [ATTEMPT_HEADER]: 0 };
      await new Promise<void>((resolve, reject) =>
        (channel as amqp.ConfirmChannel).publish(
          topology.exchange,
          routingKeyFor(topology, senderKey),
          message.content,
          { persistent: true, mandatory: true, messageId: id, contentType: 'application/json', headers },
          (error) => (error ? reject(error) : resolve()),
        ),
      );
      channel.ack(message);
      replayed.push(id);
    }
    return { replayed, skipped };
  });
}

export async function purgeDeadLetters(amqpUrl: string, topology: Topology): Promise<number> {
  return withChannel(amqpUrl, topology, false, async (channel) => (await channel.purgeQueue(topology.deadQueue)).messageCount);
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

/** Declares the topology first (idempotent), so an operator on a fresh broker sees an empty queue, not an error. */
async function withChannel<T>(url: string, topology: Topology, confirm: boolean, work: (channel: Channel) => Promise<T>): Promise<T> {
  const connection = await amqp.connect(url);
  try {
    const channel = confirm ? await connection.createConfirmChannel() : await connection.createChannel();
    // Failures surface as rejected operations; without a listener they would crash the process.
    channel.on('error', () => undefined);
    await assertTopology(channel, topology);
    const result = await work(channel);
    // Closing the channel first waits for the broker to take every ack sent on it; closing
    // only the connection can beat the last ack, and that dead letter would come back.
    await channel.close();
    return result;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

function safeJson(content: Buffer): unknown {
  try {
    return JSON.parse(content.toString('utf8'));
  } catch {
    return null;
  }
}
