import { STATS_PATH } from '../../src/http/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { createInProcessIngest, type InProcessIngest } from '../support/in-process';
import { ADMIN_TOKEN } from '../support/ingest';

let db: TestDatabase;
let ingest: InProcessIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  ingest = createInProcessIngest(db.sql, db.url);
});

afterAll(async () => {
  await ingest.drain();
  await db.drop();
});

interface Stats {
  messages: number;
  counts: Record<string, number>;
  duplicates: number;
  errorRate: number;
  ackMs: { p50: number | null; p99: number | null };
  hourly: { hour: string; messages: number; duplicates: number; errors: number }[];
}

async function stats(query: string): Promise<Stats> {
  const response = await ingest.request({ method: 'GET', url: `${STATS_PATH}${query}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(response.statusCode).toBe(200);
  return response.json() as Stats;
}

/** The current UTC hour by the database's clock, which stamps created_at; past its first and last few seconds, so a test does not straddle two. */
async function currentHourSettled(): Promise<Date> {
  for (;;) {
    const [row] = await db.sql<{ hour: Date; secondsIn: number }[]>`
      SELECT date_trunc('hour', now(), 'UTC') AS hour, extract(epoch FROM now() - date_trunc('hour', now(), 'UTC'))::float8 AS "secondsIn"`;
    if (row!.secondsIn > 5 && row!.secondsIn < 3590) return row!.hour;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

const hoursBefore = (hour: Date, hours: number) => new Date(hour.getTime() - hours * 3_600_000).toISOString();

describe('the stats window', () => {
  it('lists every hour of the window, oldest first, quiet ones as zeros, and totals only what the series holds', async () => {
    const current = await currentHourSettled();
    await db.sql`
      INSERT INTO webhook_messages (webhook_source, message_id, status, duplicate_count, response_time_ms, created_at) VALUES
        ('whatsapp', 'at-window-start', 'queued', 1, 10, date_trunc('hour', now(), 'UTC') - interval '3 hours'),
        ('whatsapp', 'just-before-window', 'queued', 5, 1000, date_trunc('hour', now(), 'UTC') - interval '3 hours 1 second'),
        ('whatsapp', 'mid-last-hour', 'malformed', 0, 20, date_trunc('hour', now(), 'UTC') - interval '30 minutes'),
        ('whatsapp', 'just-now', 'dead', 0, 30, now()),
        ('twilio', 'other-source', 'queued', 0, 40, now())`;
    const body = await stats('?source=whatsapp&hours=4');
    // The 4 hours ending with the current one; the message a second before the first is out.
    expect(body.hourly).toEqual([
      { hour: hoursBefore(current, 3), messages: 1, duplicates: 1, errors: 0 },
      { hour: hoursBefore(current, 2), messages: 0, duplicates: 0, errors: 0 },
      { hour: hoursBefore(current, 1), messages: 1, duplicates: 0, errors: 1 },
      { hour: current.toISOString(), messages: 1, duplicates: 0, errors: 1 },
    ]);
    expect(body).toMatchObject({ messages: 3, counts: { queued: 1, malformed: 1, dead: 1 }, duplicates: 1, errorRate: 0.6667 });
    // Its response time (1000 ms) is out of the percentiles too.
    expect(body.ackMs).toMatchObject({ p50: 20, p99: 29.8 });

    const lastHour = await stats('?hours=1');
    expect(lastHour.hourly).toEqual([{ hour: current.toISOString(), messages: 2, duplicates: 0, errors: 1 }]);
    expect(lastHour.messages).toBe(2);

    const day = await stats('?source=whatsapp');
    expect(day.hourly).toHaveLength(24);
    expect(day.hourly[0]!.hour).toBe(hoursBefore(current, 23));
    expect(day.hourly.reduce((sum, hour) => sum + hour.messages, 0)).toBe(day.messages);
    expect(day.messages).toBe(4);
  });

  it('counts Twilio\'s undelivered replies as failed, the one final failure the stats name', async () => {
    await currentHourSettled();
    const delivery = ['delivered', 'failed', 'undelivered', null];
    for (const [index, status] of delivery.entries()) {
      await db.sql`
        INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, body, status, delivery_status)
        VALUES (${`reply:twilio:SMstats${index}`}, 'twilio', ${`SMstats${index}`}, '15550700009', '14155238886', 'order_confirmation', 'Order #1', 'sent', ${status})`;
    }
    const body = (await stats('?source=twilio&hours=1')) as Stats & { deliveryStatus: Record<string, number> };
    expect(body.deliveryStatus).toEqual({ delivered: 1, failed: 2, none: 1 });
  });
});
