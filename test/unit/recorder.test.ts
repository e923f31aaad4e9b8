import type { Sql } from '../../src/db/client';
import type { LedgerItem } from '../../src/ledger/items';
import { createLedgerRecorder } from '../../src/ledger/recorder';

/** A database that takes statements and never answers, as one hanging behind a dead network does. */
function hangingDatabase() {
  const statements: unknown[] = [];
  const sql = { unsafe: (...args: unknown[]) => (statements.push(args), new Promise(() => undefined)) } as unknown as Sql;
  return { sql, statements };
}

function unreadableBody(id: string): LedgerItem {
  return {
    kind: 'malformed',
    source: 'whatsapp',
    messageId: id,
    rawBody: '{}',
    reason: 'test',
  };
}

const COMMIT_DEADLINE_MS = 300;
const WAVES = 3;
const REQUESTS_PER_WAVE = 5;

const request = (id: string) => ({ items: [unreadableBody(id)], receivedAtMs: Date.now(), traceparent: '' });

describe('ledger recorder against a hanging database', () => {
  it('answers every request by its deadline and never has more statements out than batch slots', async () => {
    const db = hangingDatabase();
    const recorder = createLedgerRecorder({
      sql: db.sql,
      rateLimits: { whatsapp: { maxRequests: 100, windowSeconds: 3600 }, twilio: { maxRequests: 100, windowSeconds: 3600 } },
      outboxLeaseSeconds: 60,
      maxBatchItems: 1,
      maxConcurrentBatches: 2,
      commitDeadlineMs: COMMIT_DEADLINE_MS,
      onQueued: () => undefined,
    });
    const started = Date.now();
    // Wave after wave, as provider retries would arrive while the database hangs.
    for (let wave = 0; wave < WAVES; wave += 1) {
      const results = await Promise.allSettled(Array.from({ length: REQUESTS_PER_WAVE }, (_, i) => recorder.record(request(`m-${wave}-${i}`))));
      expect(results.map((result) => result.status)).toEqual(Array(REQUESTS_PER_WAVE).fill('rejected'));
      expect(results.every((result) => (result as PromiseRejectedResult).reason.code === 'LEDGER_TIMEOUT')).toBe(true);
    }
    // Each wave waited one deadline (900 ms in all), not one per request queued ahead of it,
    // which would take at least the bound below; the gap between them is a loaded machine's margin.
    expect(Date.now() - started).toBeLessThan(WAVES * REQUESTS_PER_WAVE * COMMIT_DEADLINE_MS);
    // The first two statements still hold their slots; nothing else was sent.
    expect(db.statements).toHaveLength(2);
  });
});
