import type { Sql } from '../../src/db/client';
import type { LedgerItem } from '../../src/ledger/items';
import { createLedgerRecorder } from '../../src/ledger/recorder';
import { GENEROUS_LIMITS, queuedTextItem } from '../support/ledger-items';
import { waitFor } from '../support/wait';

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

/** A recorder of one item per batch (or up to maxBatchItems) over the given database. */
function recorderOver(sql: Sql, maxConcurrentBatches: number, commitDeadlineMs: number, maxBatchItems = 1) {
  return createLedgerRecorder({
    sql,
    rateLimits: { whatsapp: { maxRequests: 100, windowSeconds: 3600 }, twilio: { maxRequests: 100, windowSeconds: 3600 } },
    outboxLeaseSeconds: 60,
    maxBatchItems,
    maxConcurrentBatches,
    lingerMs: 0,
    commitDeadlineMs,
    onQueued: () => undefined,
  });
}

describe('ledger recorder against a hanging database', () => {
  it('answers every request by its deadline and never has more statements out than batch slots', async () => {
    const db = hangingDatabase();
    const recorder = recorderOver(db.sql, 2, COMMIT_DEADLINE_MS);
    const started = Date.now();
    // Wave after wave, as provider retries would arrive while the database hangs.
    for (let wave = 0; wave < WAVES; wave += 1) {
      const results = await Promise.allSettled(Array.from({ length: REQUESTS_PER_WAVE }, (_, i) => recorder.record(request(`m-${wave}-${i}`))));
      expect(results.map((result) => result.status)).toEqual(Array(REQUESTS_PER_WAVE).fill('rejected'));
      expect(results.every((result) => (result as PromiseRejectedResult).reason.code === 'LEDGER_TIMEOUT')).toBe(true);
      // Two requests held the slots and waited for Postgres; the others waited for a slot, and are told so.
      const waitedFor = results.map((result) => /waiting for (a batch slot|Postgres)/.exec((result as PromiseRejectedResult).reason.message)?.[1]);
      expect(waitedFor.filter((where) => where === 'a batch slot')).toHaveLength(wave === 0 ? REQUESTS_PER_WAVE - 2 : REQUESTS_PER_WAVE);
    }
    // Each wave waited one deadline (900 ms in all), not one per request queued ahead of it,
    // which would take at least the bound below; the gap between them is a loaded machine's margin.
    expect(Date.now() - started).toBeLessThan(WAVES * REQUESTS_PER_WAVE * COMMIT_DEADLINE_MS);
    // The first two statements still hold their slots; nothing else was sent.
    expect(db.statements).toHaveLength(2);
  });
});

describe('ledger recorder deadlines', () => {
  it('answers a request within one deadline of its arrival, even when it waited for a batch slot first', async () => {
    const deadlineMs = 2000;
    // The first statement answers when released; every later one hangs.
    let release: (rows: unknown[]) => void = () => undefined;
    let calls = 0;
    const sql = {
      unsafe: () => (calls++ === 0 ? new Promise((resolve) => (release = resolve)) : new Promise(() => undefined)),
    } as unknown as Sql;
    const recorder = recorderOver(sql, 1, deadlineMs);
    const first = recorder.record(request('first')).catch(() => undefined);
    const arrived = Date.now();
    const second = recorder.record(request('second')).then(
      () => 'resolved',
      (error: { code?: string }) => ({ code: error.code, afterMs: Date.now() - arrived }),
    );
    // The slot frees after most of the second request's deadline; its batch then hangs.
    setTimeout(() => release([{ ord: 0, outcome: 'malformed', row_id: '1' }]), deadlineMs * 0.6);
    await first;
    const outcome = (await second) as { code: string; afterMs: number };
    expect(outcome.code).toBe('LEDGER_TIMEOUT');
    // Not a whole deadline after its batch started (which would be 1.6 deadlines).
    expect(outcome.afterMs).toBeLessThan(deadlineMs * 1.5);
  });

  it('answers each request of a batch by its own deadline: an old one does not take the fresh ones down with it', async () => {
    const deadlineMs = 2000;
    // Statements answer when released, in the order they were sent.
    const releases: ((rows: unknown[]) => void)[] = [];
    const sql = { unsafe: () => new Promise((resolve) => releases.push(resolve)) } as unknown as Sql;
    const recorder = recorderOver(sql, 1, deadlineMs, 10);
    const settle = (promise: Promise<unknown>) => promise.then(() => 'recorded', (error: { code?: string }) => error.code);
    const first = settle(recorder.record(request('first')));
    await waitFor('the first batch to be sent', () => releases.length === 1);
    // Waits for the slot: by the time it gets one, most of its deadline is gone.
    const old = settle(recorder.record(request('old')));
    // Timers fire in order, however late: the fresh request arrives before the slot frees, so it
    // shares the old one's batch; that batch answers after the old deadline and before the fresh one.
    const fresh = new Promise<unknown>((resolve) => setTimeout(() => resolve(settle(recorder.record(request('fresh')))), deadlineMs * 0.5));
    setTimeout(() => releases[0]!([{ ord: 0, outcome: 'malformed', row_id: '1' }]), deadlineMs * 0.6);
    setTimeout(() => releases[1]!([{ ord: 0, outcome: 'malformed', row_id: '2' }, { ord: 1, outcome: 'malformed', row_id: '3' }]), deadlineMs * 1.2);
    expect(await first).toBe('recorded');
    expect(await old).toBe('LEDGER_TIMEOUT');
    expect(await fresh).toBe('recorded');
    expect(releases).toHaveLength(2);
  });

  it('gives a request with a receipt to fold its own deadline for the fold too', async () => {
    const deadlineMs = 2000;
    const releases: ((rows: unknown[]) => void)[] = [];
    let folds = 0;
    // The batch statements answer when released; the fold after a batch answers in 20 ms (its
    // statement, not the fragments it is built of).
    const sql = Object.assign((strings: TemplateStringsArray) => {
      if (strings.join('').includes('WITH wanted')) folds += 1;
      return new Promise((resolve) => setTimeout(() => resolve([]), 20));
    }, {
      unsafe: () => new Promise((resolve) => releases.push(resolve)),
    }) as unknown as Sql;
    const recorder = recorderOver(sql, 1, deadlineMs, 10);
    const settle = (promise: Promise<unknown>) => promise.then(() => 'recorded', (error: { code?: string }) => error.code);
    const receipt: LedgerItem = { kind: 'status', source: 'whatsapp', messageId: 'wamid.fresh-receipt', receipt: 'delivered', recipient: '15550001111', timestampSeconds: null, payload: {} };
    const first = settle(recorder.record(request('first')));
    await waitFor('the first batch to be sent', () => releases.length === 1);
    const old = settle(recorder.record(request('old')));
    // As above, the fresh request shares the old one's batch, which commits after the old
    // deadline; its receipt, matching no reply, is folded after the commit.
    const fresh = new Promise<unknown>((resolve) =>
      setTimeout(() => resolve(settle(recorder.record({ items: [receipt], receivedAtMs: Date.now(), traceparent: '' }))), deadlineMs * 0.5));
    setTimeout(() => releases[0]!([{ ord: 0, outcome: 'malformed', row_id: '1' }]), deadlineMs * 0.6);
    setTimeout(() => releases[1]!([{ ord: 0, outcome: 'malformed', row_id: '2' }, { ord: 1, outcome: 'status', row_id: null }]), deadlineMs * 1.2);
    expect(await first).toBe('recorded');
    expect(await old).toBe('LEDGER_TIMEOUT');
    expect(await fresh).toBe('recorded');
    expect(folds).toBe(1);
  });
});

describe('a commit answered after its requests\' deadline', () => {
  it('hands its queued rows to the relay once, and with ACK_AFTER=publish waits for no publish on behalf of callers already answered 503', async () => {
    let answer: (rows: unknown[]) => void = () => undefined;
    const sql = { unsafe: () => new Promise((resolve) => (answer = resolve)) } as unknown as Sql;
    const queued: string[][] = [];
    let publishWaits = 0;
    const recorder = createLedgerRecorder({
      sql,
      rateLimits: GENEROUS_LIMITS,
      outboxLeaseSeconds: 60,
      maxBatchItems: 1,
      maxConcurrentBatches: 1,
      lingerMs: 0,
      commitDeadlineMs: 200,
      ackAfterPublishMs: 1000,
      onQueued: (entries) => (queued.push(entries.map((entry) => entry.messageId)), Promise.resolve(true)),
      onPublishWait: () => void (publishWaits += 1),
    });
    const item = queuedTextItem();
    const outcome = await recorder.record({ items: [item], receivedAtMs: Date.now(), traceparent: '' }).catch((error: { code?: string }) => error.code);
    expect(outcome).toBe('LEDGER_TIMEOUT');
    expect(queued).toEqual([]);
    // Postgres answers now: the message was committed, and goes to the relay.
    answer([{ ord: 0, outcome: 'queued', row_id: '7' }]);
    await waitFor('the late answer to reach the relay', () => queued.length > 0);
    expect(queued).toEqual([[item.messageId]]);
    await recorder.drain();
    expect(publishWaits).toBe(0);
  });
});

/**
 * A recorder with ACK_AFTER=publish over a database the test answers statement by statement
 * (`calls`, in order), whose publishes wait for the test's confirms. Its deadline is long
 * enough for the steps before it on a busy machine; the tests wait past it all the same.
 */
function isolatingRecorder() {
  const deadlineMs = 1_500;
  const calls: { resolve(rows: unknown[]): void; reject(error: unknown): void }[] = [];
  // The batch statements answer when the test says; the fold of a receipt after one, at once.
  const sql = Object.assign(() => Promise.resolve([]), {
    unsafe: () => new Promise((resolve, reject) => calls.push({ resolve, reject })),
  }) as unknown as Sql;
  const confirms: ((published: boolean) => void)[] = [];
  const recorder = createLedgerRecorder({
    sql,
    rateLimits: GENEROUS_LIMITS,
    outboxLeaseSeconds: 60,
    maxBatchItems: 10,
    maxConcurrentBatches: 1,
    lingerMs: 0,
    commitDeadlineMs: deadlineMs,
    ackAfterPublishMs: 5_000,
    onQueued: () => new Promise<boolean>((resolve) => confirms.push(resolve)),
  });
  const started = Date.now();
  const settle = (promise: Promise<unknown>) => promise.then(() => 'recorded', (error: { code?: string }) => error.code);
  const deadlinePassed = () => waitFor('the requests\' deadline to pass', () => Date.now() > started + deadlineMs * 2);
  return { recorder, calls, confirms, settle, deadlinePassed };
}

describe('ACK_AFTER=publish while a failed batch is isolated', () => {
  it('answers a request whose part committed once its publish is confirmed, not 503 when its deadline passes during the later parts', async () => {
    const { recorder, calls, confirms, settle, deadlinePassed } = isolatingRecorder();
    const first = settle(recorder.record({ items: [queuedTextItem()], receivedAtMs: Date.now(), traceparent: '' }));
    const second = settle(recorder.record({ items: [queuedTextItem({ sender: '15550800002' })], receivedAtMs: Date.now(), traceparent: '' }));
    await waitFor('the batch of both', () => calls.length === 1);
    // Not the database's health: the batch is isolated, its requests committed apart.
    calls[0]!.reject(Object.assign(new Error('a poison item'), { code: 'XX000' }));
    await waitFor('the first part', () => calls.length === 2);
    calls[1]!.resolve([{ ord: 0, outcome: 'queued', row_id: '1' }]);
    // The second part hangs past the first request's deadline; its publish is confirmed after it.
    await waitFor('the second part', () => calls.length === 3);
    await deadlinePassed();
    confirms[0]!(true);
    expect(await first).toBe('recorded');
    calls[2]!.resolve([{ ord: 0, outcome: 'queued', row_id: '2' }]);
    expect(await second).toBe('LEDGER_TIMEOUT');
    await recorder.drain();
  });

  it('answers a request of two messages, split into items by the isolation, once both are committed and published', async () => {
    const { recorder, calls, confirms, settle, deadlinePassed } = isolatingRecorder();
    // One Meta envelope of two messages, and another request beside it: isolated, the envelope
    // is committed item by item, and the other request's part then hangs past the deadline.
    const envelope = settle(recorder.record({ items: [queuedTextItem(), queuedTextItem()], receivedAtMs: Date.now(), traceparent: '' }));
    const other = settle(recorder.record({ items: [queuedTextItem({ sender: '15550800003' })], receivedAtMs: Date.now(), traceparent: '' }));
    const poison = Object.assign(new Error('a poison item'), { code: 'XX000' });
    await waitFor('the batch', () => calls.length === 1);
    calls[0]!.reject(poison);
    await waitFor('the envelope\'s part', () => calls.length === 2);
    calls[1]!.reject(poison);
    await waitFor('the first item', () => calls.length === 3);
    calls[2]!.resolve([{ ord: 0, outcome: 'queued', row_id: '1' }]);
    await waitFor('the second item', () => calls.length === 4);
    calls[3]!.resolve([{ ord: 0, outcome: 'queued', row_id: '2' }]);
    await waitFor('the other request\'s part', () => calls.length === 5);
    // Both items committed; the deadline passes while their publishes wait for the broker's confirms.
    await waitFor('both publishes under way', () => confirms.length === 2);
    await deadlinePassed();
    confirms.forEach((confirm) => confirm(true));
    expect(await envelope).toBe('recorded');
    calls[4]!.resolve([{ ord: 0, outcome: 'queued', row_id: '3' }]);
    expect(await other).toBe('LEDGER_TIMEOUT');
    await recorder.drain();
  });

  it('answers a request with a receipt to fold once its fold is in and its publish confirmed', async () => {
    const { recorder, calls, confirms, settle, deadlinePassed } = isolatingRecorder();
    const receipt: LedgerItem = { kind: 'status', source: 'whatsapp', messageId: 'wamid.receipt-to-fold', receipt: 'delivered', recipient: '15550001111', timestampSeconds: null, payload: {} };
    // A Meta envelope of a message and a receipt matching no reply yet (folded after the commit).
    const envelope = settle(recorder.record({ items: [queuedTextItem(), receipt], receivedAtMs: Date.now(), traceparent: '' }));
    const other = settle(recorder.record({ items: [queuedTextItem({ sender: '15550800004' })], receivedAtMs: Date.now(), traceparent: '' }));
    await waitFor('the batch', () => calls.length === 1);
    calls[0]!.reject(Object.assign(new Error('a poison item'), { code: 'XX000' }));
    await waitFor('the envelope\'s part', () => calls.length === 2);
    calls[1]!.resolve([{ ord: 0, outcome: 'queued', row_id: '1' }, { ord: 1, outcome: 'status', row_id: null }]);
    await waitFor('the other request\'s part', () => calls.length === 3);
    await waitFor('the publish under way', () => confirms.length === 1);
    await deadlinePassed();
    confirms[0]!(true);
    expect(await envelope).toBe('recorded');
    calls[2]!.resolve([{ ord: 0, outcome: 'queued', row_id: '2' }]);
    expect(await other).toBe('LEDGER_TIMEOUT');
    await recorder.drain();
  });
});
