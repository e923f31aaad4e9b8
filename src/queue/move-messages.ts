import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { WagateError } from '../errors';
import { withoutBrokerHeaders } from './headers';
import { queueMessageSchema } from './message';
import { publishRouted } from './publish-routed';
import { routingKeyFor, type Topology } from './topology';

export interface Destination {
  exchange: string;
  routingKey: string;
}

/**
 * One delivery at a time: a delivery taken beyond the messages counted at the start goes back
 * when the channel closes, and each such return raises its delivery count. With one in hand,
 * at most one message per queue (one that arrived during the move) pays that.
 */
const MOVE_PREFETCH = 1;
/** How often a move with nothing in hand asks whether anything is still ready to come. */
const MOVE_IDLE_CHECK_MS = 1000;

/**
 * Moves the messages ready in `source` now to where `destinationOf` says, in queue order:
 * each is republished (persistent, mandatory) and confirmed before it is acked, so a crash
 * leaves at most one copy in both places, which the worker's claim skips. It must be the
 * queue's only consumer (the workers have released it). Returns how many moved.
 */
export async function moveReadyMessages(
  connection: ChannelModel,
  source: string,
  destinationOf: (message: ConsumeMessage) => Destination,
  afterEach?: (moved: number, total: number) => Promise<void>,
): Promise<number> {
  const channel = await connection.createConfirmChannel();
  try {
    return await moveOnChannel(channel, source, destinationOf, afterEach);
  } finally {
    await channel.close().catch(() => undefined);
  }
}

async function moveOnChannel(
  channel: ConfirmChannel,
  source: string,
  destinationOf: (message: ConsumeMessage) => Destination,
  afterEach?: (moved: number, total: number) => Promise<void>,
): Promise<number> {
  const { messageCount } = await channel.checkQueue(source);
  if (messageCount === 0) return 0;
  await channel.prefetch(MOVE_PREFETCH);
  let moved = 0;
  let chain = Promise.resolve();
  let consumerTag = '';
  let inHand = 0;
  let deliveries = 0;
  let idleCheck: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve, reject) => {
    void channel
      .consume(source, (message) => {
        if (!message) return reject(new WagateError('BROKER_UNAVAILABLE', `the broker cancelled the move from ${source}`));
        inHand += 1;
        deliveries += 1;
        chain = chain.then(async () => {
          if (moved >= messageCount) return;
          await republish(channel, message, destinationOf(message));
          channel.ack(message);
          moved += 1;
          await afterEach?.(moved, messageCount);
          if (moved === messageCount) resolve();
        }).finally(() => (inHand -= 1)).catch(reject);
      })
      .then((ok) => (consumerTag = ok.consumerTag), reject);
    // Counted messages can go without being delivered (a retry tier's expire by their TTL): with
    // none in hand and none ready, twice in a row with no delivery between (one could be on its
    // way to this consumer at the first look), nothing more will come, and the move is done.
    let deliveriesAtEmpty: number | null = null;
    let checking = false;
    idleCheck = setInterval(() => {
      if (inHand > 0) return void (deliveriesAtEmpty = null);
      // One look at a time, so that two looks are always a second apart.
      if (checking) return;
      checking = true;
      const seen = deliveries;
      void channel.checkQueue(source).then(({ messageCount: ready }) => {
        checking = false;
        if (ready > 0 || inHand > 0 || deliveries !== seen) return void (deliveriesAtEmpty = null);
        if (deliveriesAtEmpty === seen) resolve();
        deliveriesAtEmpty = seen;
      }, reject);
    }, MOVE_IDLE_CHECK_MS);
  });
  try {
    await done;
  } finally {
    clearInterval(idleCheck);
  }
  await channel.cancel(consumerTag);
  // A delivery already under way finishes its move before the channel closes.
  await chain.catch(() => undefined);
  // Deliveries beyond the count (arrived meanwhile) were not taken: the broker requeues them
  // when the channel closes, in order, since they were never acked.
  return moved;
}

async function republish(channel: ConfirmChannel, message: ConsumeMessage, to: Destination): Promise<void> {
  const { properties } = message;
  const routed = await publishRouted(channel, to.exchange, to.routingKey, message.content, {
    messageId: properties.messageId as string,
    contentType: properties.contentType,
    headers: withoutBrokerHeaders(properties.headers),
    persistent: true,
    mandatory: true,
  });
  if (!routed) throw new WagateError('BROKER_UNAVAILABLE', `the broker could not route ${String(message.properties.messageId)} to ${to.exchange} ${to.routingKey}`);
}

/** How many times a queue about to be deleted is emptied again after messages turned up during its emptying. */
const EMPTYING_ROUNDS = 5;

/** Moves a queue's messages until a move finds none (a late one can come after a count), before the queue is deleted. */
export async function emptyQueue(connection: ChannelModel, queue: string, destinationOf: (message: ConsumeMessage) => Destination,
  afterEach?: (moved: number, total: number) => Promise<void>): Promise<number> {
  let moved = 0;
  for (let round = 0; round < EMPTYING_ROUNDS; round += 1) {
    const more = await moveReadyMessages(connection, queue, destinationOf, afterEach);
    moved += more;
    if (more === 0) break;
  }
  return moved;
}

/** The routing key of the message's sender's shard in `topology`, or null for a message that names no sender. */
export function senderRoutingKey(topology: Topology, message: ConsumeMessage): string | null {
  try {
    const parsed = queueMessageSchema.safeParse(JSON.parse(message.content.toString('utf8')));
    return parsed.success ? routingKeyFor(topology, parsed.data.senderKey) : null;
  } catch {
    return null;
  }
}

/** The message's sender's shard in `topology`, or the dead-letter queue for a message that names no sender. */
export function senderShardOrDead(topology: Topology, message: ConsumeMessage): Destination {
  const key = senderRoutingKey(topology, message);
  return key ? { exchange: topology.exchange, routingKey: key } : { exchange: topology.deadExchange, routingKey: topology.deadRoutingKey };
}
