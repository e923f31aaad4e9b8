import amqp, { type ChannelModel } from 'amqplib';
import { WagateError } from '../errors';
import { redactUrl } from '../telemetry/redact-url';

export interface QueueCounts {
  messageCount: number;
  consumerCount: number;
}

/**
 * A queue's ready messages and consumers by passive declare, or null when it does not exist.
 * Asked on a channel of its own, since the broker closes the channel a missing queue is asked on.
 */
export async function inspectQueue(connection: ChannelModel, queue: string): Promise<QueueCounts | null> {
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  try {
    const { messageCount, consumerCount } = await channel.checkQueue(queue);
    return { messageCount, consumerCount };
  } catch (error) {
    if ((error as { code?: number }).code === 404) return null;
    throw error;
  } finally {
    await channel.close().catch(() => undefined);
  }
}

/** How long a command waits for the broker's connection, each time it opens one. */
const BRIEF_CONNECT_TIMEOUT_MS = 10_000;

/**
 * A connection of a command's own (a reshard, requeue-stuck), for a few questions or moves; one
 * that cannot be had says where it was asked for, never with the password.
 */
export async function connectBriefly(amqpUrl: string, connectionName: string): Promise<ChannelModel> {
  try {
    return await amqp.connect(amqpUrl, { clientProperties: { connection_name: connectionName }, timeout: BRIEF_CONNECT_TIMEOUT_MS });
  } catch (error) {
    throw new WagateError('BROKER_UNAVAILABLE', `cannot reach RabbitMQ at ${redactUrl(amqpUrl)} (${(error as Error).message}): check AMQP_URL and that RabbitMQ runs there`, { cause: error });
  }
}

/** Which of these queues hold ready messages (a missing one holds none), on a connection of its own. */
export async function queuesHoldingMessages(amqpUrl: string, queues: readonly string[], connectionName: string): Promise<string[]> {
  if (queues.length === 0) return [];
  const connection = await connectBriefly(amqpUrl, connectionName);
  try {
    const holding: string[] = [];
    for (const queue of queues) if (((await inspectQueue(connection, queue))?.messageCount ?? 0) > 0) holding.push(queue);
    return holding;
  } finally {
    await connection.close().catch(() => undefined);
  }
}
