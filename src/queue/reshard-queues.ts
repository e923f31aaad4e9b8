import type { ChannelModel } from 'amqplib';
import { WagateError } from '../errors';
import { connectBriefly, inspectQueue } from './inspect-queue';
import { emptyQueue, moveReadyMessages, senderRoutingKey, senderShardOrDead } from './move-messages';
import { assertTopology, declareShardQueue, type Topology } from './topology';

/**
 * Moves a group's queued work from one shard count to another, keeping each sender's order:
 * every old shard, in turn and in queue order, into one staging queue, then the staging
 * queue, in order, into the new shards. Retries waiting in a tier are re-addressed to their
 * sender's new shard (their wait starts again); surplus old shards are unbound, emptied and
 * deleted. The workers must have released every shard first.
 */
export interface MoveOptions {
  /** An earlier run to this count had gathered every old shard (the reshard keeps this in Postgres). */
  gathered: boolean;
  /** Records that every old shard is gathered, before anything is distributed. */
  onGathered(): Promise<void>;
  /**
   * Tiers of retry delays the group's processes declared before, no longer in the shell's
   * RETRY_DELAYS_MS: their waiting retries come back with their old shard's key all the same.
   */
  earlierTiers?: Topology['retryTiers'];
  /** Asked between two old shards as they are gathered: a reason to stop there, or null to go on. */
  stopRequested?(): Promise<string | null>;
  /** After each message put on its new shard, with how many of the staged ones are done. */
  afterDistributed?(done: number, total: number): Promise<void>;
  progress(line: string): void;
}

/**
 * Before the workers are paused: the broker answers, and this shell's topology is the group's.
 * The count comes from Postgres, but the retry tiers and the delivery limit come from the
 * shell's RETRY_DELAYS_MS and QUEUE_DELIVERY_LIMIT: with other delays, the move would leave the
 * group's waiting retries alone, and they would come back to shard queues a shrink deleted. A
 * group that has run has its first shard queue; then every tier of the shell's must be there,
 * and that queue must take the shell's delivery limit.
 */
export async function checkBrokerMatches(amqpUrl: string, topology: Topology): Promise<void> {
  const connection = await connectBriefly(amqpUrl, 'wagate-reshard');
  try {
    if (!(await inspectQueue(connection, topology.shards[0]!.queue))) return;
    const tiers = topology.retryTiers.map((tier) => tier.queue);
    const present = await existingQueues(connection, tiers);
    const missing = tiers.filter((queue) => !present.has(queue));
    if (missing.length > 0) {
      throw new WagateError('OPERATION_REFUSED',
        `the retry tier queue(s) ${missing.join(', ')} of this shell's RETRY_DELAYS_MS are not on the broker, though the group's shard queues are: the workers run with other retry delays, and a reshard with these would strand their waiting retries. The workers were left as they were; run it with the workers' settings (kubectl exec into a worker pod)`);
    }
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    await declareShardQueue(channel, topology, 0);
    await channel.close().catch(() => undefined);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

export async function moveToShardCount(amqpUrl: string, oldTopology: Topology, newTopology: Topology, options: MoveOptions) {
  const connection = await connectBriefly(amqpUrl, 'wagate-reshard');
  try {
    return await moveQueues(connection, oldTopology, newTopology, options);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** The queue a reshard gathers every old shard into; one per group, whatever the counts. */
function stagingQueue(topology: Topology): string {
  return `${topology.exchange}.reshard`;
}

/** Messages an interrupted reshard left in its staging queue (0 when there is none). */
export async function stagedMessages(amqpUrl: string, topology: Topology): Promise<number> {
  const connection = await connectBriefly(amqpUrl, 'wagate-reshard');
  try {
    return (await inspectQueue(connection, stagingQueue(topology)))?.messageCount ?? 0;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

async function moveQueues(connection: ChannelModel, oldTopology: Topology, newTopology: Topology, options: MoveOptions) {
  const { progress } = options;
  const staging = stagingQueue(newTopology);
  const setup = await connection.createChannel();
  await assertTopology(setup, newTopology);
  await setup.assertQueue(staging, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await setup.close();

  // A rerun after an interrupted move that had gathered everything: the old shards that stay
  // then hold only what it distributed, each sender's earliest messages; gathering them again
  // would put them behind the sender's later ones, still in staging. An old shard already
  // deleted says so too (the surplus goes only after the gathering).
  const present = await existingQueues(connection, oldTopology.shards.map((shard) => shard.queue));
  const gathered = options.gathered || present.size < oldTopology.shards.length;
  let taken = 0;
  if (gathered) progress('an earlier run gathered the old shards and was interrupted; going on from there');
  else {
    for (const shard of oldTopology.shards) {
      const stop = (await options.stopRequested?.()) ?? null;
      if (stop !== null) throw new WagateError('OPERATION_REFUSED', stop);
      taken += await moveReadyMessages(connection, shard.queue, () => ({ exchange: '', routingKey: staging }));
    }
    await options.onGathered();
  }
  progress(`took ${taken} message(s) off ${oldTopology.shards.length} old shard(s), in order`);
  // Before the surplus queues lose their bindings: a retry coming back with an old key would have nowhere to go.
  let retriesReaddressed = 0;
  const earlier = options.earlierTiers ?? [];
  const earlierPresent = await existingQueues(connection, earlier.map((tier) => tier.queue));
  for (const tier of [...newTopology.retryTiers, ...earlier.filter((tier) => earlierPresent.has(tier.queue))]) {
    retriesReaddressed += await moveReadyMessages(connection, tier.queue, (message) => ({
      exchange: tier.exchange,
      routingKey: senderRoutingKey(newTopology, message) ?? message.fields.routingKey,
    }));
  }
  for (const shard of oldTopology.shards.slice(newTopology.shards.length)) {
    if (present.has(shard.queue)) await removeSurplus(connection, oldTopology.exchange, shard, staging);
  }
  // What reaches the new shards: on a rerun, also what an interrupted run gathered into staging.
  const distributed = await emptyQueue(connection, staging, (message) => senderShardOrDead(newTopology, message), options.afterDistributed);
  const cleanup = await connection.createChannel();
  // Nothing else publishes to staging, and it reads empty now (quorum queues refuse if-empty deletes).
  await cleanup.deleteQueue(staging);
  await cleanup.close();
  progress(`put ${distributed} message(s) on ${newTopology.shards.length} new shard(s) and re-addressed ${retriesReaddressed} waiting retries`);
  return { moved: distributed, retriesReaddressed };
}

/**
 * A queue beyond the new count. Unbound first, so that nothing new reaches it (an ingest with
 * the old count then gets its publish returned and keeps the message in its outbox), then
 * emptied into staging and deleted.
 */
async function removeSurplus(connection: ChannelModel, exchange: string, shard: Topology['shards'][number], staging: string): Promise<void> {
  const channel = await connection.createChannel();
  try {
    await channel.unbindQueue(shard.queue, exchange, shard.routingKey);
    // Emptied until it reads empty: a publish routed just before the unbind can land after a count.
    await emptyQueue(connection, shard.queue, () => ({ exchange: '', routingKey: staging }));
    await channel.deleteQueue(shard.queue);
  } finally {
    await channel.close().catch(() => undefined);
  }
}

/**
 * The queues among these that a consumer still reads, with how many. The move must be each
 * queue's only consumer: behind another (they are single-active-consumer queues) it would wait
 * for messages that consumer takes, for good.
 */
export async function consumedQueues(amqpUrl: string, queues: string[]): Promise<{ queue: string; consumers: number }[]> {
  const connection = await connectBriefly(amqpUrl, 'wagate-reshard');
  try {
    const consumed: { queue: string; consumers: number }[] = [];
    for (const queue of queues) {
      const counts = await inspectQueue(connection, queue);
      if (counts && counts.consumerCount > 0) consumed.push({ queue, consumers: counts.consumerCount });
    }
    return consumed;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** The queues among these that exist. */
async function existingQueues(connection: ChannelModel, queues: string[]): Promise<Set<string>> {
  const existing = new Set<string>();
  for (const queue of queues) if (await inspectQueue(connection, queue)) existing.add(queue);
  return existing;
}
