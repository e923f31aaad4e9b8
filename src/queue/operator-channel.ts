import type { ConfirmChannel } from 'amqplib';
import { WagateError } from '../errors';
import type { Logger } from '../telemetry/logger';
import { asBrokerError } from './amqp-errors';
import { createBroker, type Broker } from './broker';
import { redactUrl } from '../telemetry/redact-url';
import { assertTopology, type Topology } from './topology';

/** How long an operator command waits for the broker before it gives up, in milliseconds. */
const OPERATOR_CONNECT_TIMEOUT_MS = 10_000;
const CONNECT_POLL_MS = 50;

export interface OperatorChannelOptions {
  url: string;
  topology: Topology;
  log: Logger;
}

/**
 * A confirm channel for one operator command (dlq, erase), through the same broker
 * connection code as the long-running roles. The exchanges and the dead-letter queue are
 * declared first (idempotent), so an operator on a fresh broker sees an empty queue, not an
 * error. No shard queue is: these commands read the dead-letter queue and publish through the
 * exchange, and one that a shrinking reshard deleted while the command waited (for an erase's
 * scans, or the dead-letter lock) would come back, bound, and take messages no worker reads.
 * No retry tier is either: a shell's own RETRY_DELAYS_MS would make tiers no worker uses, and
 * hide from `reshard` that the shell's delays are not the group's.
 * What was taken and not acked goes back to its queue when the channel closes.
 */
export async function withOperatorChannel<T>(options: OperatorChannelOptions, work: (channel: ConfirmChannel) => Promise<T>): Promise<T> {
  const broker = createBroker({
    url: options.url,
    name: 'wagate-cli',
    // The command's one line of failure says what the broker's own lines would, once.
    log: options.log.child({}, { level: 'silent' }),
    setup: (channel) => assertTopology(channel, { ...options.topology, retryTiers: [] }, 0),
  });
  try {
    await connected(broker, options.url);
    const channel = broker.channel();
    if (!channel) throw new WagateError('BROKER_UNAVAILABLE', 'the broker connection closed as soon as it opened');
    return await work(channel);
  } catch (error) {
    throw asBrokerError(error);
  } finally {
    await broker.close();
  }
}

/**
 * Waits for the broker, and says why it could not be had: a refused login at once (waiting
 * does not heal a wrong password), anything else after OPERATOR_CONNECT_TIMEOUT_MS with the
 * last attempt's error.
 */
async function connected(broker: Broker, url: string): Promise<void> {
  const deadline = Date.now() + OPERATOR_CONNECT_TIMEOUT_MS;
  const where = redactUrl(url);
  while (!broker.isConnected()) {
    if (broker.fatalError()) throw broker.fatalError();
    if (broker.loginRefusedSince() !== null) {
      const user = decodeURIComponent(new URL(url).username || 'guest');
      throw new WagateError('BROKER_UNAVAILABLE', `the broker at ${where} refused the login of user "${user}": check the user and password in AMQP_URL (or AMQP_URL_FILE)`);
    }
    if (Date.now() >= deadline) {
      const last = broker.lastConnectError();
      throw new WagateError('BROKER_UNAVAILABLE',
        `no broker answered at ${where} within ${OPERATOR_CONNECT_TIMEOUT_MS / 1000} s${last ? ` (last error: ${last})` : ''}: check AMQP_URL and that RabbitMQ runs there`);
    }
    await new Promise((resolve) => setTimeout(resolve, CONNECT_POLL_MS));
  }
}
