import amqp, { type ChannelModel } from 'amqplib';
import { loadConfig } from '../../src/config';
import { topologyFromConfig } from '../../src/queue/depths';
import { moveToShardCount } from '../../src/queue/reshard-queues';
import { assertTopology, routingKeyFor, type Topology } from '../../src/queue/topology';
import { bodyOf, openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { testEnv } from '../support/ingest';

/**
 * `wagate reshard --to 2` from 4 shards, interrupted after it had gathered every old shard into
 * staging, deleted the surplus shards and put one message per sender on its new shard. Run
 * again, it must finish, and each sender's messages must stay in order.
 */
const env = testEnv('postgres://unused@127.0.0.1/unused');
const oldTopology = topologyFromConfig(loadConfig({ ...env, WORK_SHARDS: '4' }));
const newTopology = topologyFromConfig(loadConfig({ ...env, WORK_SHARDS: '2' }));
const staging = `${newTopology.exchange}.reshard`;
const SENDERS = ['15551230001', '15551230002', '15551230003', '15551230004', '15551230005', '15551230006'];
const PER_SENDER = 5;

let connection: ChannelModel;
let probe: QueueProbe;

beforeAll(async () => {
  connection = await amqp.connect(TEST_AMQP_URL);
  probe = await openQueueProbe();
});

afterAll(async () => {
  await probe.deleteTopology(oldTopology);
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  await channel.deleteQueue(staging).catch(() => undefined);
  await connection.close();
  await probe.close();
});

function message(sender: string, seq: number): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, source: 'whatsapp', messageId: `wamid.${sender}.${seq}`, from: sender, senderKey: sender, business: '1', contactName: null, type: 'text', timestampSeconds: null, receivedAt: '2026-12-01T10:00:00.000Z', content: {}, seq }));
}

/** What the interrupted run left behind. */
async function interruptedShrink(topology: Topology): Promise<void> {
  const channel = await connection.createConfirmChannel();
  await assertTopology(channel, topology);
  await channel.assertQueue(staging, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  for (const sender of SENDERS) {
    // The first message was already distributed to the sender's new shard, the rest wait in staging.
    channel.publish(newTopology.exchange, routingKeyFor(newTopology, sender), message(sender, 1), { persistent: true });
    for (let seq = 2; seq <= PER_SENDER; seq += 1) channel.sendToQueue(staging, message(sender, seq), { persistent: true });
  }
  await channel.waitForConfirms();
  for (const shard of topology.shards.slice(newTopology.shards.length)) await channel.deleteQueue(shard.queue);
  await channel.close();
}

it('finishes an interrupted shrink when run again, and keeps each sender in order', async () => {
  await interruptedShrink(oldTopology);
  const lines: string[] = [];
  const report = await moveToShardCount(TEST_AMQP_URL, oldTopology, newTopology, { gathered: false, onGathered: async () => undefined, progress: (line) => lines.push(line) });
  expect(lines[0]).toContain('an earlier run gathered the old shards');
  // What it put on the new shards: the interrupted run's gathering, not the nothing this run gathered.
  const waiting = SENDERS.length * (PER_SENDER - 1);
  expect(report.moved).toBe(waiting);
  expect(lines.at(-1)).toContain(`put ${waiting} message(s) on ${newTopology.shards.length} new shard(s)`);

  const bySender = new Map<string, number[]>();
  for (const shard of newTopology.shards) {
    for (const delivered of await probe.drain(shard.queue)) {
      const body = bodyOf(delivered) as { senderKey: string; seq: number };
      expect(shard.routingKey).toBe(routingKeyFor(newTopology, body.senderKey));
      bySender.set(body.senderKey, [...(bySender.get(body.senderKey) ?? []), body.seq]);
    }
  }
  const inOrder = Array.from({ length: PER_SENDER }, (_, index) => index + 1);
  expect(Object.fromEntries(bySender)).toEqual(Object.fromEntries(SENDERS.map((sender) => [sender, inOrder])));
}, 60_000);
