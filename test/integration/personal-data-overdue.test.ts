import { loadConfig } from '../../src/config';
import { personalDataOverdueSeconds } from '../../src/ledger/personal-data-overdue';
import { runCleanup } from '../../src/ledger/retention';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { testEnv } from '../support/ingest';

/**
 * What WagatePersonalDataOverdue reads: how far past PERSONAL_DATA_RETENTION_DAYS the oldest
 * personal data cleanup should have cleared is. A cleanup that never ran, or failed every
 * night, said nothing before.
 */
const DAYS = 7;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: true });
});

afterAll(async () => {
  await db.drop();
});

const reply = (key: string, status: string, body: string | null, age: string) => db.sql`
  INSERT INTO outbound_messages (idempotency_key, webhook_source, inbound_message_id, recipient, business_number, kind, status, body, created_at)
  VALUES (${key}, 'whatsapp', ${key}, '1', '2', 'order_confirmation', ${status}, ${body}, now() - ${age}::interval)`;
const order = (id: string, name: string | null, age: string) => db.sql`
  INSERT INTO orders (webhook_source, message_id, phone_number, sender_key, customer_name, status, total, currency, created_at)
  VALUES ('whatsapp', ${id}, '1', '1', ${name}, 'open', 10, 'EUR', now() - ${age}::interval)`;

it('reads 0 while nothing is past its retention, and how far past it the oldest reply text or order name is once cleanup falls behind', async () => {
  await reply('recent', 'sent', 'Thanks Ana!', '2 days');
  await order('recent', 'Ana', '3 days');
  // Cleared on an earlier night, and a reply still on its way, whose text cleanup keeps.
  await reply('cleared', 'sent', null, '200 days');
  await reply('on-its-way', 'retry', 'Thanks Bea!', '30 days');
  expect(await personalDataOverdueSeconds(db.sql, DAYS)).toBe(0);

  await order('missed', 'Caro', `${DAYS + 2} days`);
  await reply('missed', 'sent', 'Thanks Dan!', `${DAYS + 3} days`);
  const overdue = await personalDataOverdueSeconds(db.sql, DAYS);
  // Three days past, give or take the statements' own time.
  expect(overdue).toBeGreaterThan(3 * 86_400 - 60);
  expect(overdue).toBeLessThan(3 * 86_400 + 60);

  const report = await runCleanup(db.sql, loadConfig(testEnv(db.url)), { days: 30, personalDataDays: DAYS, orderDays: 365 });
  expect([report.personal_data_replies, report.personal_data_orders]).toEqual([1, 1]);
  expect(await personalDataOverdueSeconds(db.sql, DAYS)).toBe(0);
});
