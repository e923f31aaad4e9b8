import { randomBytes } from 'node:crypto';
import type { RateLimit, Source } from '../config';
import { transaction, type Sql } from '../db/client';
import { planBatch, rateLimitsJson } from './batch-plan';
import { foldReceipts } from './fold-receipts';
import type { LedgerItem } from './items';
import { RECORD_BATCH_SQL } from './record-batch-sql';

export interface LedgerWarmUpOptions {
  sql: Sql;
  /** Pool connections to open: those the group commit will use at once. */
  connections: number;
  rateLimits: Record<Source, RateLimit>;
  outboxLeaseSeconds: number;
}

/**
 * Opens `connections` pool connections and runs on each one ledger batch, a message, a
 * receipt and an unparseable body, and the fold of that receipt (foldReceipts), in a
 * transaction that is rolled back. A new connection
 * costs a handshake and postgres.js's type query, and its first batch the statement's
 * preparation and the compilation and planning of every path of the batch function: paid by
 * the first requests, that made a freshly started ingest's p99 several times a warm one's.
 * Nothing is kept: the rows, the rate-limit counts and the outbox entry go with the rollback.
 */
export async function warmUpLedger(options: LedgerWarmUpOptions): Promise<void> {
  const limits = JSON.stringify(rateLimitsJson(options.rateLimits));
  // Each transaction holds its reserved connection until it ends, so these open distinct ones.
  // Each has ids and a sender of its own: sharing them, each batch waited on the one before it
  // until its rollback (the same message's unique key, the same rate-limit row), so the
  // batches ran one after another and, on a slow database, the last ones ran out of time.
  const batches = await Promise.allSettled(
    Array.from({ length: options.connections }, () => {
      const tag = `wagate-warm-up-${randomBytes(6).toString('hex')}`;
      const plan = planBatch([{ items: rehearsalItems(tag), receivedAtMs: Date.now(), traceparent: '' }]);
      return transaction(
        options.sql,
        async (tx) => {
          await tx.unsafe(RECORD_BATCH_SQL, [JSON.stringify(plan.rows), limits, options.outboxLeaseSeconds], { prepare: true });
          await foldReceipts(tx, [{ source: 'whatsapp', providerMessageId: tag }]);
        },
        'rollback',
      );
    }),
  );
  // Every transaction has ended, its connection back in the pool, before a failure is reported.
  const failed = batches.find((batch) => batch.status === 'rejected');
  if (failed) throw failed.reason;
}

function rehearsalItems(tag: string): LedgerItem[] {
  const sender = '10000000000';
  const receivedAt = new Date().toISOString();
  return [
    {
      kind: 'message',
      source: 'whatsapp',
      messageId: tag,
      sender,
      senderKey: tag,
      business: tag,
      type: 'text',
      timestampSeconds: Math.floor(Date.now() / 1000),
      verdict: 'queued',
      payload: {
        v: 1,
        source: 'whatsapp',
        messageId: tag,
        from: sender,
        senderKey: tag,
        business: tag,
        contactName: null,
        type: 'text',
        timestampSeconds: Math.floor(Date.now() / 1000),
        receivedAt,
        content: { type: 'text', text: { body: 'warm-up' } },
      },
    },
    { kind: 'status', source: 'whatsapp', messageId: tag, receipt: 'delivered', recipient: sender, timestampSeconds: null, payload: {} },
    { kind: 'malformed', source: 'twilio', messageId: `${tag}-malformed`, rawBody: '{', reason: 'warm-up' },
  ];
}
