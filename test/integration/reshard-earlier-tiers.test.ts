import amqp, { type ChannelModel } from 'amqplib';
import { declareShardTopology } from '../../src/ledger/shard-topology';
import { routingKeyFor, shardOf, topologyNames } from '../../src/queue/topology';
import { createLogger } from '../../src/telemetry/logger';
import { reshard } from '../../src/worker/reshard';
import { bodyOf, deleteTopology, openQueueProbe, TEST_AMQP_URL, type QueueProbe } from '../support/amqp';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { randomQueuePrefix } from '../support/ingest';
import { waitFor } from '../support/wait';

/**
 * RETRY_DELAYS_MS changed, and a tier no longer listed still holds a retry. When it expires it
 * goes back to the work exchange with its sender's old shard key. A shrink run with the new
 * delays re-addressed only the listed tiers and deleted that shard queue, so the broker dropped
 * the retry when it came back, and its record stayed queued until the stuck-message alert.
 */
const prefix = randomQueuePrefix();
/** Long enough that the retry is still waiting when the reshard has run, on a busy machine too. */
const EARLIER_DELAY_MS = 15_000;
const before = { prefix, deliveryLimit: 5, retryDelaysMs: [1000, EARLIER_DELAY_MS], shards: 4 };
const now = { ...before, retryDelaysMs: [1000] };
let db: TestDatabase;
let connection: ChannelModel;
let probe: QueueProbe;

beforeAll(async () => {
  db = await createTestDatabase();
  connection = await amqp.connect(TEST_AMQP_URL);
  probe = await openQueueProbe();
});

afterAll(async () => {
  await deleteTopology(topologyNames(before));
  await probe.close();
  await connection.close();
  await db.drop();
});

/** A sender on the last of four shards, which a shrink to two deletes. */
const SENDER = (() => {
  for (let n = 0; ; n += 1) if (shardOf(`1555077${n}`, 4) === 3) return `1555077${n}`;
})();

it('re-addresses the retries waiting in a tier of earlier retry delays, so a shrink does not strand them', async () => {
  // A worker of the earlier delays connected: it declared, and recorded, both tiers.
  const channel = await connection.createConfirmChannel();
  await declareShardTopology(db.sql, channel, topologyNames(before), prefix, createLogger('silent', 'test'));
  expect(await db.sql`SELECT delay_ms FROM retry_tier_delays WHERE queue_prefix = ${prefix} ORDER BY delay_ms`).toEqual([{ delay_ms: 1000 }, { delay_ms: EARLIER_DELAY_MS }]);
  // Its retry waits in the longer tier, addressed to the sender's shard of four.
  const old = topologyNames(before);
  const tier = old.retryTiers[1]!;
  const body = { v: 1, source: 'whatsapp', messageId: 'wamid.earlier-tier', from: SENDER, senderKey: SENDER, business: '1', contactName: null, type: 'text',
    timestampSeconds: null, receivedAt: '2026-12-01T10:00:00.000Z', content: {} };
  channel.publish(tier.exchange, routingKeyFor(old, SENDER), Buffer.from(JSON.stringify(body)), { persistent: true, messageId: 'whatsapp:wamid.earlier-tier' });
  await channel.waitForConfirms();
  await channel.close();

  // The group now runs with the shorter list alone, and shrinks.
  const lines: string[] = [];
  const report = await reshard({ sql: db.sql, amqpUrl: TEST_AMQP_URL, topology: now, livenessTimeoutMs: 1000, releaseTimeoutMs: 1000, progress: (line) => void lines.push(line) }, 2);
  expect(report).toMatchObject({ from: 4, to: 2, retriesReaddressed: 1 });

  // It comes back, when its wait is over, to the sender's shard of two.
  const two = topologyNames({ ...now, shards: 2 });
  const home = two.shards.find((shard) => shard.routingKey === routingKeyFor(two, SENDER))!;
  const [back] = await waitFor('the retry on its sender\'s new shard', async () => {
    const found = await probe.drain(home.queue);
    return found.length > 0 ? found : null;
  }, 3 * EARLIER_DELAY_MS);
  expect(bodyOf(back!)).toMatchObject({ messageId: 'wamid.earlier-tier', senderKey: SENDER });
}, 5 * EARLIER_DELAY_MS);
