import amqp, { type ConsumeMessage, type GetMessage } from 'amqplib';

export const TEST_AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export interface QueueProbe {
  /** Takes every message currently ready in the queue (acked, so they are gone). */
  drain(queue: string): Promise<GetMessage[]>;
  readyCount(queue: string): Promise<number>;
  /** Deletes every queue and exchange the prefix declared. */
  deleteTopology(prefix: string, retryDelaysMs?: number[]): Promise<void>;
  close(): Promise<void>;
}

export async function openQueueProbe(): Promise<QueueProbe> {
  const connection = await amqp.connect(TEST_AMQP_URL);
  const channel = await connection.createChannel();
  return {
    async drain(queue) {
      const messages: GetMessage[] = [];
      for (;;) {
        const message = await channel.get(queue, { noAck: true });
        if (!message) return messages;
        messages.push(message);
      }
    },
    async readyCount(queue) {
      return (await channel.checkQueue(queue)).messageCount;
    },
    async deleteTopology(prefix, retryDelaysMs = [5000, 30000, 300000, 1800000]) {
      const queues = [`${prefix}.work`, `${prefix}.dead`, ...retryDelaysMs.map((ms) => `${prefix}.retry.${ms}ms`)];
      for (const queue of queues) await channel.deleteQueue(queue).catch(() => undefined);
      for (const exchange of [prefix, `${prefix}.retry`, `${prefix}.dlx`]) await channel.deleteExchange(exchange).catch(() => undefined);
    },
    async close() {
      await connection.close().catch(() => undefined);
    },
  };
}

export function bodyOf(message: GetMessage | ConsumeMessage): Record<string, unknown> {
  return JSON.parse(message.content.toString('utf8')) as Record<string, unknown>;
}
