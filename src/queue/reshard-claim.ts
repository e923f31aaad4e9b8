import amqp from 'amqplib';
import { WagateError } from '../errors';
import { redactUrl } from '../telemetry/redact-url';
import type { Topology } from './topology';

/** The reshard's hold on the broker: whether it still has it. */
export interface ReshardClaim {
  held(): boolean;
}

/** How long a reshard waits for the connection that holds its claim. */
const CLAIM_CONNECT_TIMEOUT_MS = 10_000;

/** The broker's answer to a declare of another connection's exclusive queue. */
const RESOURCE_LOCKED = 405;

/**
 * Runs `work` while this process holds the group's reshard claim on the broker: an exclusive
 * queue, which lives exactly as long as the connection that declared it. The Postgres lock
 * alone could end mid-move without the mover knowing (a failover, a proxy's reset, an
 * administrator's pg_terminate_backend); a second run then took it, and, the first's consumers
 * being between queues or on the staging queue, passed every check and emptied staging beside
 * it, putting a sender's messages on the new shards out of order. The claim is given up when
 * its connection closes, by the process or by its death.
 */
export async function withReshardClaim<T>(amqpUrl: string, topology: Topology, work: (claim: ReshardClaim) => Promise<T>): Promise<T> {
  const queue = `${topology.exchange}.reshard.claim`;
  let connection: amqp.ChannelModel;
  try {
    connection = await amqp.connect(amqpUrl, { clientProperties: { connection_name: 'wagate-reshard-claim' }, timeout: CLAIM_CONNECT_TIMEOUT_MS });
  } catch (error) {
    throw new WagateError('BROKER_UNAVAILABLE', `cannot reach RabbitMQ at ${redactUrl(amqpUrl)} (${(error as Error).message}): check AMQP_URL and that RabbitMQ runs there`, { cause: error });
  }
  let open = true;
  connection.on('close', () => (open = false));
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      await channel.assertQueue(queue, { exclusive: true, durable: false });
    } catch (error) {
      if ((error as { code?: number }).code !== RESOURCE_LOCKED) throw error;
      throw new WagateError('OPERATION_REFUSED',
        `another wagate reshard of "${topology.exchange}" is running: its connection to the broker holds the queue ${queue}. Let it finish; if it is gone, its connection closes within the broker's heartbeat timeout, then run the command again`);
    }
    return await work({ held: () => open });
  } finally {
    await connection.close().catch(() => undefined);
  }
}
