import type { ConfirmChannel } from 'amqplib';
import { WagateError } from '../errors';
import type { Logger } from '../telemetry/logger';
import { asBrokerError } from './amqp-errors';
import { createBroker } from './broker';
import { assertTopology, type Topology } from './topology';

/** How long an operator command waits for the broker before it gives up, in milliseconds. */
const OPERATOR_CONNECT_TIMEOUT_MS = 10_000;

export interface OperatorChannelOptions {
  url: string;
  topology: Topology;
  /** Only the first so many shard queues are declared (declarableShardCount); all when absent. */
  shardLimit?: number;
  log: Logger;
}

/** The topology an operator command works on, and how many of its shard queues it may declare. */
export interface OperatorTopology {
  topology: Topology;
  shardLimit: number;
}

/**
 * A confirm channel for one operator command (dlq, erase), through the same broker
 * connection code as the long-running roles. The topology is declared first (idempotent),
 * so an operator on a fresh broker sees an empty queue, not an error. What was taken and
 * not acked goes back to its queue when the channel closes.
 */
export async function withOperatorChannel<T>(options: OperatorChannelOptions, work: (channel: ConfirmChannel) => Promise<T>): Promise<T> {
  const broker = createBroker({
    url: options.url,
    name: 'wagate-cli',
    log: atLeastWarn(options.log),
    setup: (channel) => assertTopology(channel, options.topology, options.shardLimit),
  });
  try {
    await broker.waitUntilConnected(OPERATOR_CONNECT_TIMEOUT_MS);
    const channel = broker.channel();
    if (!channel) throw new WagateError('BROKER_UNAVAILABLE', 'the broker connection closed as soon as it opened');
    return await work(channel);
  } catch (error) {
    throw asBrokerError(error);
  } finally {
    await broker.close();
  }
}

/** The command prints its answer on stdout, as the logger does: the broker's routine lines ("connected") stay out of it. */
function atLeastWarn(log: Logger): Logger {
  return log.levelVal >= log.levels.values.warn! ? log : log.child({}, { level: 'warn' });
}
