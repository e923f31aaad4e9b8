import type { Sql } from '../db/client';
import { addressVariants } from './addresses';

/**
 * Every key one customer is known by: the forms of their number, plus the business-scoped
 * user ids (Meta's `user_id`) their messages and orders were keyed on. Rate limits and
 * orders use the user id when Meta sends one, so an operator who types a phone number must
 * still reach those rows.
 */
export async function senderKeysOf(sql: Sql, phone: string): Promise<string[]> {
  const addresses = addressVariants(phone);
  const rows = await sql<{ sender_key: string }[]>`
    SELECT sender_key FROM webhook_messages WHERE phone_number = ANY(${addresses}) AND sender_key IS NOT NULL
    UNION
    SELECT sender_key FROM orders WHERE phone_number = ANY(${addresses})`;
  return [...new Set([...addresses, ...rows.map((row) => row.sender_key)])];
}
