import type { Channel, ChannelModel } from 'amqplib';
import { failAfter } from '../settle-within';
import type { QueueCounts } from './inspect-queue';

/** A question the broker leaves unanswered this long gets no answer, and its channel is dropped. */
const QUESTION_TIMEOUT_MS = 5_000;

export interface QueueInspector {
  /** The queue's ready messages and consumers, or null when it does not exist. */
  inspect(connection: ChannelModel, queue: string): Promise<QueueCounts | null>;
}

/**
 * Asks queues' counts by passive declare on one channel, kept open while it serves: a channel
 * opened and closed for each question had every worker do so 33 times every 5 s (with 16
 * workers about 100 a second, the churn RabbitMQ warns about). The broker closes the channel a
 * missing queue is asked on, so questions go one at a time, and after a refusal (or a question
 * that timed out) the next one opens a fresh channel.
 */
export function createQueueInspector(timeoutMs = QUESTION_TIMEOUT_MS): QueueInspector {
  let kept: { connection: ChannelModel; channel: Channel } | null = null;
  let last: Promise<unknown> = Promise.resolve();

  async function channelOn(connection: ChannelModel): Promise<Channel> {
    if (kept?.connection === connection) return kept.channel;
    const opening = connection.createChannel();
    let channel: Channel;
    try {
      channel = await failAfter(opening, timeoutMs, () => new Error(`the broker did not open a channel within ${timeoutMs} ms`));
    } catch (error) {
      // The open goes on, and a channel that arrives after the question gave up is kept by
      // nobody: under a slow broker each gauge refresh could leave up to 33 of them, every 5 s,
      // until the connection ran out of channels and the worker could take no shard.
      void opening.then((late) => (late.on('error', () => undefined), late.close())).catch(() => undefined);
      throw error;
    }
    channel.on('error', () => undefined);
    const entry = { connection, channel };
    channel.once('close', () => {
      if (kept === entry) kept = null;
    });
    kept = entry;
    return channel;
  }

  function drop(channel: Channel): void {
    if (kept?.channel === channel) kept = null;
    void channel.close().catch(() => undefined);
  }

  async function ask(connection: ChannelModel, queue: string): Promise<QueueCounts | null> {
    const channel = await channelOn(connection);
    try {
      const { messageCount, consumerCount } = await failAfter(channel.checkQueue(queue), timeoutMs,
        () => new Error(`the broker did not answer a passive declare of ${queue} within ${timeoutMs} ms`));
      return { messageCount, consumerCount };
    } catch (error) {
      drop(channel);
      if ((error as { code?: number }).code === 404) return null;
      throw error;
    }
  }

  return {
    inspect(connection, queue) {
      const answer = last.then(() => ask(connection, queue));
      last = answer.catch(() => undefined);
      return answer;
    },
  };
}
