import { createLogger } from '../../src/telemetry/logger';
import { createMetrics } from '../../src/telemetry/metrics';
import { createStatementBatchers } from '../../src/worker/statement-batchers';
import type { QueueMessage } from '../../src/queue/message';
import { seriesValue } from '../support/metrics';
import { startPipeline, type Pipeline } from '../support/pipeline';
import { postMetaText, uniqueWamid } from '../support/webhooks';
import { waitFor } from '../support/wait';

let pipeline: Pipeline;
const MATCH = { threshold: 0.5, ambiguityMargin: 0.1 };

beforeAll(async () => {
  pipeline = await startPipeline();
});

afterAll(async () => {
  await pipeline.stop();
});

function queued(messageId: string, from: string): QueueMessage {
  return {
    v: 1, source: 'whatsapp', messageId, from, senderKey: from, business: '106540352242922', contactName: null,
    type: 'text', timestampSeconds: null, receivedAt: new Date().toISOString(), content: { text: { body: '1 coke' } },
  };
}

async function insertQueued(messages: QueueMessage[]): Promise<void> {
  for (const m of messages) {
    await pipeline.db.sql`INSERT INTO webhook_messages (webhook_source, message_id, phone_number, sender_key, status)
                          VALUES (${m.source}, ${m.messageId}, ${m.from}, ${m.senderKey}, 'queued')`;
  }
}

describe('statements shared by sender chains (micro-batches)', () => {
  it('claims a batch around a message Postgres refuses: that one fails alone, the others are claimed once', async () => {
    const metrics = createMetrics('test');
    const batchers = createStatementBatchers(pipeline.db.sql, createLogger('silent', 'test'), metrics, MATCH);
    const good = Array.from({ length: 7 }, (_, i) => queued(uniqueWamid(), `1555061000${i}`));
    await insertQueued(good);
    // A NUL cannot be stored in a text column: the statement that carries it fails as a whole.
    const poison = queued(`${uniqueWamid()}\u0000`, '15550619999');
    const all = [...good.slice(0, 3), poison, ...good.slice(3)];
    const results = await Promise.allSettled(all.map((message) => batchers.claim(message)));

    expect(results[3]!.status).toBe('rejected');
    const claims = results.filter((_, index) => index !== 3);
    expect(claims.every((r) => r.status === 'fulfilled' && typeof r.value === 'object' && r.value !== null && r.value.reply === null)).toBe(true);
    const rows = await pipeline.db.sql<{ status: string; attempts: number }[]>`
      SELECT status, attempts FROM webhook_messages WHERE message_id = ANY(${good.map((m) => m.messageId)})`;
    expect(rows).toHaveLength(good.length);
    expect(rows.every((row) => row.status === 'processing' && row.attempts === 1)).toBe(true);
    // They did share a statement: the first batch held all eight, then halves down to the poison one.
    const exposition = await metrics.registry.metrics();
    const batches = seriesValue(exposition, 'wagate_worker_batch_items_count', { statement: 'claim' });
    expect(seriesValue(exposition, 'wagate_worker_batch_items_bucket', { statement: 'claim', le: '4' })).toBe(batches - 1);
  });

  it('settles a batch around a settlement Postgres refuses: the others are sent and their messages finished', async () => {
    const batchers = createStatementBatchers(pipeline.db.sql, createLogger('silent', 'test'), createMetrics('test'), MATCH);
    const messages = Array.from({ length: 4 }, (_, i) => queued(uniqueWamid(), `1555062000${i}`));
    await insertQueued(messages);
    await Promise.all(messages.map((message) => batchers.claim(message)));
    const replies = await pipeline.db.sql<{ id: string; inbound_message_id: string }[]>`
      INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status, attempts)
      SELECT 'reply:whatsapp:' || id, 'whatsapp', id, '15550620000', '106540352242922', 'order_confirmation', 'ok', 'sending', 1
      FROM unnest(${messages.map((m) => m.messageId)}::text[]) AS id
      RETURNING id::text, inbound_message_id`;
    const settlement = (reply: { id: string; inbound_message_id: string }) => ({
      replyId: reply.id, status: 'sent' as const, providerMessageId: `wamid.sent-${reply.id}`, error: null, source: 'whatsapp' as const,
      finish: { messageId: reply.inbound_message_id, outcome: 'processed' as const },
    });
    const poison = { ...settlement(replies[0]!), replyId: 'not-a-number' };
    const results = await Promise.allSettled([...replies.map(settlement), poison].map((s) => batchers.settle(s)));

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    const rows = await pipeline.db.sql<{ reply: string; message: string }[]>`
      SELECT o.status AS reply, m.status AS message FROM outbound_messages o
      JOIN webhook_messages m ON m.webhook_source = o.webhook_source AND m.message_id = o.inbound_message_id
      WHERE o.id = ANY(${replies.map((r) => r.id)}::bigint[])`;
    expect(rows).toEqual(replies.map(() => ({ reply: 'sent', message: 'processed' })));
  });

  it('writes a batch of decisions around one Postgres refuses: the others get their order and reply once', async () => {
    const batchers = createStatementBatchers(pipeline.db.sql, createLogger('silent', 'test'), createMetrics('test'), MATCH);
    const messages = Array.from({ length: 5 }, (_, i) => queued(uniqueWamid(), `1555062500${i}`));
    await insertQueued(messages);
    await Promise.all(messages.map((message) => batchers.claim(message)));
    const write = async (message: QueueMessage, unitPrice: string) => ({
      source: message.source, messageId: message.messageId, senderKey: message.senderKey, recipient: message.from,
      business: message.business, contactName: null, language: 'en', rememberLanguage: true, kind: 'order_confirmation' as const,
      body: 'Order confirmed', order: { id: await batchers.drawOrderId(), total: '2.50', currency: 'EUR', lines: [{ line: 1, sku: 'COKE', name: 'Coke', quantity: 1, unit_price: unitPrice }] },
    });
    // An order line whose price is no number fails the statement.
    const writes = await Promise.all(messages.map((message, index) => write(message, index === 2 ? 'not-a-price' : '2.50')));
    const results = await Promise.allSettled(writes.map((each) => batchers.writeDecision(each)));

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const orders = await pipeline.db.sql<{ message_id: string; items: number; reply: string }[]>`
      SELECT o.message_id, (SELECT count(*) FROM order_items i WHERE i.order_id = o.id)::integer AS items, r.status AS reply
      FROM orders o JOIN outbound_messages r ON r.order_id = o.id
      WHERE o.message_id = ANY(${messages.map((m) => m.messageId)}) ORDER BY o.id`;
    const expected = messages.filter((_, index) => index !== 2).map((m) => ({ message_id: m.messageId, items: 1, reply: 'pending' }));
    expect(orders).toEqual(expected);
  });

  it('keeps every sender in order through a backlog handled in shared statements: one order and one reply per message', async () => {
    const senders = Array.from({ length: 40 }, (_, i) => `155506300${String(i).padStart(2, '0')}`);
    const texts = ['2 margherita', '1 coke', 'cancel'];
    const ids = new Map(senders.map((from) => [from, texts.map(() => uniqueWamid())]));
    // Queued before any worker runs, so that many senders' messages are in hand at once.
    for (const [index, text] of texts.entries()) {
      await Promise.all(senders.map(async (from) => {
        expect((await postMetaText(pipeline.ingest.baseUrl, { id: ids.get(from)![index]!, from, text })).status).toBe(200);
      }));
    }
    const all = [...ids.values()].flat();
    const worker = await pipeline.startWorker();
    await waitFor('every message processed', async () => {
      const [row] = await pipeline.db.sql<{ done: number }[]>`
        SELECT count(*)::integer AS done FROM webhook_messages WHERE message_id = ANY(${all}) AND status = 'processed'`;
      return row!.done === all.length;
    }, 60_000);

    const exposition = await worker.metrics.registry.metrics();
    const claimBatches = seriesValue(exposition, 'wagate_worker_batch_items_count', { statement: 'claim' });
    expect(seriesValue(exposition, 'wagate_worker_batch_items_sum', { statement: 'claim' })).toBeGreaterThan(claimBatches);
    const calls = pipeline.fake.calls();
    for (const from of senders) {
      const [first, second, third] = ids.get(from)!;
      const orders = await pipeline.db.sql<{ message_id: string; status: string }[]>`
        SELECT message_id, status FROM orders WHERE sender_key = ${from} ORDER BY id`;
      // The cancel came last and took the latest open order: the coke, not the pizzas.
      expect(orders).toEqual([{ message_id: first, status: 'open' }, { message_id: second, status: 'cancelled' }]);
      const replies = await pipeline.db.sql<{ inbound_message_id: string; status: string; provider_message_id: string }[]>`
        SELECT inbound_message_id, status, provider_message_id FROM outbound_messages WHERE recipient = ${from} ORDER BY id`;
      expect(replies.map((r) => [r.inbound_message_id, r.status])).toEqual([[first, 'sent'], [second, 'sent'], [third, 'sent']]);
      // One call per reply, made in the sender's order.
      const sent = calls.filter((call) => (call.body as { to?: string }).to === from).map((call) => call.providerMessageId);
      expect(sent).toEqual(replies.map((r) => r.provider_message_id));
    }
  }, 120_000);
});
