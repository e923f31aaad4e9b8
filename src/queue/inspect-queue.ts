import type { ChannelModel } from 'amqplib';

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
