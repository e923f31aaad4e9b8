import amqp, { type ConsumeMessage, type GetMessage } from 'amqplib';
import type { Topology } from '../../src/queue/topology';

export const TEST_AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export interface QueueProbe {
  /** Takes every message currently ready in the queue (acked, so they are gone). */
  drain(queue: string): Promise<GetMessage[]>;
  /** Takes every ready message from all work shards. */
  drainWork(topology: Topology): Promise<GetMessage[]>;
  readyCount(queue: string): Promise<number>;
  /** Deletes every queue and exchange of the topology. */
  deleteTopology(topology: Topology): Promise<void>;
  close(): Promise<void>;
}

export async function openQueueProbe(url = TEST_AMQP_URL): Promise<QueueProbe> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  const withChannel = async (work: (ch: amqp.Channel) => Promise<unknown>) => {
    const ch = await connection.createChannel();
    ch.on('error', () => undefined);
    await work(ch).catch(() => undefined);
    await ch.close().catch(() => undefined);
  };
  // Work queues have a single active consumer, which rules out basic.get: consume exactly
  // the messages that are ready now, then cancel.
  const drain = async (queue: string) => {
    const ready = (await channel.checkQueue(queue)).messageCount;
    if (ready === 0) return [] as GetMessage[];
    const messages: GetMessage[] = [];
    let consumerTag = '';
    await new Promise<void>((resolve) => {
      void channel
        .consume(queue, (message) => {
          if (!message) return;
          messages.push(message as unknown as GetMessage);
          channel.ack(message);
          if (messages.length === ready) resolve();
        })
        .then((ok) => (consumerTag = ok.consumerTag));
    });
    await channel.cancel(consumerTag);
    return messages;
  };
  return {
    drain,
    async drainWork(topology) {
      const all: GetMessage[] = [];
      for (const shard of topology.shards) all.push(...(await drain(shard.queue)));
      return all;
    },
    async readyCount(queue) {
      return (await channel.checkQueue(queue)).messageCount;
    },
    async deleteTopology(topology) {
      const queues = [...topology.shards.map((s) => s.queue), topology.deadQueue, ...topology.retryTiers.map((t) => t.queue)];
      const exchanges = [topology.exchange, topology.deadExchange, ...topology.retryTiers.map((t) => t.exchange)];
      // A failed delete closes the channel, so each gets a channel of its own.
      for (const name of queues) await withChannel((ch) => ch.deleteQueue(name));
      for (const name of exchanges) await withChannel((ch) => ch.deleteExchange(name));
    },
    async close() {
      await connection.close().catch(() => undefined);
    },
  };
}

export function bodyOf(message: GetMessage | ConsumeMessage): Record<string, unknown> {
  return JSON.parse(message.content.toString('utf8')) as Record<string, unknown>;
}

/**
 * Counts the calls by which a channel's connection hands data to the kernel (write or writev),
 * until restored. The socket is not part of amqplib's typed API.
 */
export function countSocketFlushes(channel: amqp.Channel): { count(): number; restore(): void } {
  const socket = (channel as unknown as { connection: { stream: Record<string, unknown> } }).connection.stream;
  let flushes = 0;
  const originals = { _write: socket._write, _writev: socket._writev };
  for (const name of ['_write', '_writev'] as const) {
    const original = originals[name] as (...args: unknown[]) => unknown;
    socket[name] = function (this: unknown, ...args: unknown[]) {
      flushes += 1;
      return original.apply(this, args);
    };
  }
  return {
    count: () => flushes,
    restore: () => Object.assign(socket, originals),
  };
}

/** Deletes every queue and exchange of a topology a test made, on a connection of its own. */
export async function deleteTopology(topology: Topology): Promise<void> {
  const probe = await openQueueProbe();
  try {
    await probe.deleteTopology(topology);
  } finally {
    await probe.close();
  }
}
