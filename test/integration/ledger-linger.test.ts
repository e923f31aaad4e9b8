import { setImmediate as nextTurn } from 'node:timers/promises';
import { createLedgerRecorder, type LedgerRecorderOptions } from '../../src/ledger/recorder';
import type { LedgerItem } from '../../src/ledger/items';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { uniqueWamid } from '../support/webhooks';

/**
 * LEDGER_LINGER_MS: at low rates a request waits a little for company, so that several share
 * one commit; a batch that is already full commits at once.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

function unreadableBody(): LedgerItem {
  return { kind: 'malformed', source: 'whatsapp', messageId: uniqueWamid(), rawBody: '{}', reason: 'test' };
}

function recorderWith(options: Pick<LedgerRecorderOptions, 'lingerMs' | 'maxBatchItems'>) {
  const batches: number[] = [];
  const recorder = createLedgerRecorder({
    sql: db.sql,
    rateLimits: { whatsapp: { maxRequests: 1000, windowSeconds: 3600 }, twilio: { maxRequests: 1000, windowSeconds: 3600 } },
    outboxLeaseSeconds: 60,
    maxConcurrentBatches: 2,
    commitDeadlineMs: 120_000,
    onQueued: () => undefined,
    onBatch: (items) => batches.push(items),
    ...options,
  });
  const record = () => recorder.record({ items: [unreadableBody()], receivedAtMs: Date.now(), traceparent: '' });
  return { record, batches };
}

/** Lets several event-loop turns pass: without a linger, the first request's batch would have started by then. */
async function afterSomeTurns(): Promise<void> {
  for (let turn = 0; turn < 5; turn += 1) await nextTurn();
}

it('commits requests that arrive turns apart within the linger together', async () => {
  const { record, batches } = recorderWith({ lingerMs: 500, maxBatchItems: 256 });
  const first = record();
  await afterSomeTurns();
  const second = record();
  await afterSomeTurns();
  const third = record();
  await expect(Promise.all([first, second, third])).resolves.toEqual([['malformed'], ['malformed'], ['malformed']]);
  expect(batches).toEqual([3]);
});

it('without a linger, a request that arrives turns later gets a commit of its own', async () => {
  const { record, batches } = recorderWith({ lingerMs: 0, maxBatchItems: 256 });
  const first = record();
  await afterSomeTurns();
  const second = record();
  await Promise.all([first, second]);
  expect(batches).toEqual([1, 1]);
});

it('commits a full batch at once instead of waiting out the linger', async () => {
  // A linger longer than the test's timeout: only the full batch can answer these in time.
  const { record, batches } = recorderWith({ lingerMs: 10 * 60_000, maxBatchItems: 3 });
  const first = record();
  await afterSomeTurns();
  await expect(Promise.all([first, record(), record()])).resolves.toHaveLength(3);
  expect(batches).toEqual([3]);
});
