import { loadConfig } from '../../src/config';
import type { AnsweredDecision } from '../../src/orders/decision';
import { createCatalogCache } from '../../src/orders/catalog-cache';
import { importCatalog } from '../../src/orders/catalog-import';
import { buildOrder } from '../../src/orders/order-lines';
import { CATALOG_CHANGED, recordDecision } from '../../src/orders/record-decision';
import { loadReplyCatalogues } from '../../src/orders/replies';
import type { DecisionWrite } from '../../src/orders/write-decisions';
import type { QueueMessage } from '../../src/queue/message';
import { replyClientFromConfig } from '../../src/replies/from-config';
import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { TWILIO_WEBHOOK_PATH } from '../../src/webhooks/paths';
import { processMessage, type PipelineDeps } from '../../src/worker/process-message';
import { createStatementBatchers } from '../../src/worker/statement-batchers';
import type { FakeProvider } from '../../src/dev/fake-provider';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';
import { ACCESS_TOKEN, PUBLIC_BASE_URL, startKnownFakeProvider, TWILIO_SID } from '../support/pipeline';
import { uniqueWamid } from '../support/webhooks';

/**
 * An order is priced from the match, a few round trips before it is written. A catalog import
 * in between (a new price, a product switched off) used to leave the order at the old price, or
 * for a product no longer sold, confirmed to the customer. The write now checks every line
 * against the catalog, writes nothing when one changed, and the message is decided again.
 */
const TEXTS = { catalogues: loadReplyCatalogues(), defaultLanguage: 'en' as const };
const POLICY = { cancelWindowHours: 24, stuckAfterMs: 90 * 60_000 };
const MATCH = { threshold: 0.45, ambiguityMargin: 0.05 };
let db: TestDatabase;
let fake: FakeProvider;
let deps: PipelineDeps;
/** Runs before each decision's write, as an import committed between the match and the write would. */
let beforeWrite: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  fake = await startKnownFakeProvider();
  await importCatalog(db.sql, 'sku,name,price,currency,aliases\nTIRAMISU,Tiramisu,5.00,EUR,\nLEMONADE,Lemonade,3.00,EUR,\n');
  const config = loadConfig(testEnv(db.url, { PUBLIC_BASE_URL, WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN, WHATSAPP_GRAPH_API_URL: fake.url, TWILIO_API_URL: fake.url, TWILIO_ACCOUNT_SID: TWILIO_SID }));
  const metrics = createMetrics('worker', { processMetrics: false });
  const batchers = createStatementBatchers(db.sql, createLogger('silent', 'test'), metrics, MATCH);
  deps = {
    sql: db.sql, sendReply: replyClientFromConfig(config, TWILIO_WEBHOOK_PATH), metrics, match: MATCH, replyTexts: TEXTS, orderPolicy: POLICY,
    catalog: createCatalogCache(db.sql, batchers.match), claim: batchers.claim, drawOrderId: batchers.drawOrderId,
    writeDecision: async (write: DecisionWrite) => {
      await beforeWrite();
      return batchers.writeDecision(write);
    },
    markSending: batchers.markSending, settle: batchers.settle,
  };
});

afterEach(async () => {
  beforeWrite = async () => undefined;
  await db.sql`UPDATE products SET price = CASE sku WHEN 'TIRAMISU' THEN 5.00 ELSE 3.00 END, active = true`;
});

afterAll(async () => {
  await fake.close();
  await db.drop();
});

async function queued(from: string, text: string): Promise<QueueMessage> {
  const messageId = uniqueWamid();
  await db.sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, business_number, status)
               VALUES ('whatsapp', ${messageId}, ${from}, ${from}, '106540352242922', 'queued')`;
  return {
    v: 1, source: 'whatsapp', messageId, from, senderKey: from, business: '106540352242922', contactName: null, type: 'text',
    timestampSeconds: null, receivedAt: new Date().toISOString(), content: { text: { body: text } },
  };
}

function tiramisuAt(price: string): AnsweredDecision {
  const decision = buildOrder([{ product: { sku: 'TIRAMISU', name: 'Tiramisu', price, currency: 'EUR' }, quantity: 1 }]);
  if (decision.kind !== 'order') throw new Error(`no order: ${decision.kind}`);
  return decision;
}

const orderOf = async (message: QueueMessage) => (await db.sql<{ total: string }[]>`
  SELECT total::text FROM orders WHERE message_id = ${message.messageId}`)[0];
const replyOf = async (message: QueueMessage) => (await db.sql<{ kind: string; body: string }[]>`
  SELECT kind, body FROM outbound_messages WHERE inbound_message_id = ${message.messageId}`)[0];

it('decides again at the new price when an import changes it between the match and the write', async () => {
  const message = await queued('15550920001', '2 tiramisu');
  let writes = 0;
  beforeWrite = async () => {
    writes += 1;
    if (writes === 1) await importCatalog(db.sql, 'sku,name,price,currency,aliases\nTIRAMISU,Tiramisu,6.00,EUR,\nLEMONADE,Lemonade,3.00,EUR,\n');
  };
  expect(await processMessage(deps, message)).toBe('processed');
  expect(writes).toBe(2);
  expect(await orderOf(message)).toEqual({ total: '12.00' });
  expect((await replyOf(message))?.body).toContain('12.00');
  expect((await db.sql`SELECT unit_price::text AS price FROM order_items JOIN orders o ON o.id = order_id WHERE o.message_id = ${message.messageId}`)[0])
    .toEqual({ price: '6.00' });
});

it('asks about a product switched off between the match and the write, and places no order', async () => {
  const message = await queued('15550920002', '1 lemonade');
  beforeWrite = async () => void (await db.sql`UPDATE products SET active = false WHERE sku = 'LEMONADE'`);
  expect(await processMessage(deps, message)).toBe('unmatched');
  expect(await orderOf(message)).toBeUndefined();
  expect((await replyOf(message))?.kind).toBe('clarification');
});

it('hands the message to a retry tier, with nothing written, when the catalog keeps changing under its write', async () => {
  const message = await queued('15550920003', '1 tiramisu');
  let price = 5;
  beforeWrite = async () => void (await db.sql`UPDATE products SET price = ${(price += 1).toFixed(2)} WHERE sku = 'TIRAMISU'`);
  await expect(processMessage(deps, message)).rejects.toThrow(`the catalog changed 3 times while the order of whatsapp:${message.messageId} was being written`);
  expect(await orderOf(message)).toBeUndefined();
  expect(await replyOf(message)).toBeUndefined();
  expect((await db.sql`SELECT status FROM webhook_messages WHERE message_id = ${message.messageId}`)[0]).toEqual({ status: 'processing' });
});

it('writes no order in the transaction path either when a line\'s price changed since the decision', async () => {
  const message = await queued('15550920004', '');
  await db.sql`UPDATE webhook_messages SET status = 'processing' WHERE message_id = ${message.messageId}`;
  const decision = tiramisuAt('5.00');
  await db.sql`UPDATE products SET price = 5.50 WHERE sku = 'TIRAMISU'`;
  expect(await recordDecision(db.sql, message, decision, TEXTS, POLICY)).toBe(CATALOG_CHANGED);
  expect(await orderOf(message)).toBeUndefined();
  expect(await replyOf(message)).toBeUndefined();
  // At the price the catalog holds, it is written.
  const repriced = tiramisuAt('5.50');
  expect(await recordDecision(db.sql, message, repriced, TEXTS, POLICY)).toMatchObject({ orderCreated: true });
  expect(await orderOf(message)).toEqual({ total: '5.50' });
});
