import postgres from 'postgres';
import type { Sql } from '../../src/db/client';
import type { LedgerRecorder } from '../../src/ledger/recorder';
import type { LedgerItem } from '../../src/ledger/items';
import { isDatabaseUnavailable } from '../../src/db/postgres-errors';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { queuedTextItem, serialRecorder } from '../support/ledger-items';
import { uniqueWamid } from '../support/webhooks';

let db: TestDatabase;
let recorder: LedgerRecorder;
const isolated: unknown[] = [];

/** Every isolation the file's recorders start is counted in `isolated`. */
const recorderOver = (sql: Sql, commitDeadlineMs: number) => serialRecorder(sql, commitDeadlineMs, { onIsolating: (error) => isolated.push(error) });

beforeAll(async () => {
  db = await createTestDatabase();
  recorder = recorderOver(db.sql, 10000);
});

afterAll(async () => {
  await db.drop();
});

const textMessage = (text: string, id?: string) => queuedTextItem({ text, id });

/** Hands every request to the recorder in the same event-loop turn, so they share one batch. */
function recordTogether(requests: LedgerItem[][]) {
  return Promise.all(requests.map((items) => recorder.record({ items, receivedAtMs: Date.now(), traceparent: '' })));
}

async function statusOf(id: string): Promise<{ status: string; raw_body: string | null } | undefined> {
  const [row] = await db.sql<{ status: string; raw_body: string | null }[]>`
    SELECT status, raw_body FROM webhook_messages WHERE message_id = ${id}`;
  return row;
}

describe('a poison item in a group commit', () => {
  it('costs only itself: the other requests of its batch commit, and it is kept as malformed', async () => {
    const genuine = [textMessage('2 pizzas'), textMessage('one coke'), textMessage('menu')];
    const poison = textMessage('pizza\u0000please');
    const outcomes = await recordTogether([[genuine[0]!], [genuine[1]!, poison], [genuine[2]!]]);

    expect(outcomes).toEqual([['queued'], ['queued', 'malformed'], ['queued']]);
    expect(isolated.map((error) => (error as { code?: string }).code)).toEqual(['22P05']);
    for (const item of genuine) expect((await statusOf(item.messageId))?.status).toBe('queued');
    const kept = await statusOf(poison.messageId);
    expect(kept?.status).toBe('malformed');
    // The message as received, U+0000 included, is kept as base64.
    const decoded = Buffer.from(kept!.raw_body!.replace(/^base64:/, ''), 'base64').toString('utf8');
    expect(JSON.parse(decoded).content.text.body).toBe('pizza\u0000please');
    const outboxRows = await db.sql`SELECT 1 FROM outbox`;
    expect(outboxRows).toHaveLength(3);
  });

  it('makes the provider’s retry of the poison body a duplicate', async () => {
    const poison = textMessage('\u0000');
    expect(await recordTogether([[poison], [textMessage('hi')]])).toEqual([['malformed'], ['queued']]);
    expect(await recordTogether([[poison]])).toEqual([['duplicate']]);
  });

  it('keeps an unparseable body with a U+0000 byte as malformed instead of failing', async () => {
    const body: LedgerItem = { kind: 'malformed', source: 'twilio', messageId: `malformed:${uniqueWamid()}`, rawBody: 'a\u0000b', reason: 'not a form' };
    expect(await recordTogether([[body]])).toEqual([['malformed']]);
    expect((await statusOf(body.messageId))?.raw_body).toBe(`base64:${Buffer.from('a\u0000b').toString('base64')}`);
  });
});

describe('a batch committed apart', () => {
  it('answers the requests of its later parts at their deadline while an earlier part hangs', async () => {
    const short = recorderOver(db.sql, 2000);
    const held = uniqueWamid();
    const holder = await db.sql.reserve();
    try {
      // The first part's message waits for this uncommitted insert of the same key, past every deadline.
      await holder`BEGIN`;
      await holder`INSERT INTO webhook_messages (webhook_source, message_id, status) VALUES ('whatsapp', ${held}, 'processed')`;
      // The poison item fails the batch at once, so it is committed apart: [first, poison], then [last].
      const record = (items: LedgerItem[]) => short.record({ items, receivedAtMs: Date.now(), traceparent: '' });
      const first = record([textMessage('2 pizzas', held)]);
      const poison = record([textMessage('pizza\u0000please')]);
      const last = record([textMessage('one coke')]);
      await expect(first).rejects.toMatchObject({ code: 'LEDGER_TIMEOUT' });
      await expect(poison).rejects.toMatchObject({ code: 'LEDGER_TIMEOUT' });
      await expect(last).rejects.toMatchObject({ code: 'LEDGER_TIMEOUT' });
      // Still held: the answers came from the deadlines, not from the part ending.
      const [waiting] = await db.sql<{ n: number }[]>`
        SELECT count(*)::integer AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
      expect(waiting!.n).toBe(1);
      await holder`ROLLBACK`;
    } finally {
      holder.release();
    }
    await short.drain();
  });
});

describe('a database that takes no writes', () => {
  it('answers every request of the batch as unavailable at once, without committing them apart', async () => {
    // What a pool reconnected to a standby after a failover gets: SQLSTATE 25006.
    const standby = postgres(db.url, { max: 2, onnotice: () => undefined, connection: { default_transaction_read_only: true } });
    const before = isolated.length;
    const readOnly = recorderOver(standby, 10000);
    try {
      const record = (items: LedgerItem[]) => readOnly.record({ items, receivedAtMs: Date.now(), traceparent: '' });
      const answers = [record([textMessage('2 pizzas')]), record([textMessage('one coke')])];
      for (const answer of answers) await expect(answer).rejects.toMatchObject({ code: '25006' });
      expect(isDatabaseUnavailable(await answers[0]!.catch((error: unknown) => error))).toBe(true);
      expect(isolated).toHaveLength(before);
    } finally {
      await standby.end({ timeout: 1 });
    }
  });
});
