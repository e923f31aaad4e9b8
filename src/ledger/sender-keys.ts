import type { Sql } from '../db/client';
import { addressVariants } from './addresses';

/**
 * Every key one customer is known by: the forms of their number, plus the business-scoped
 * user ids (Meta's `user_id`) their messages and orders were keyed on, or, given a user id,
 * the numbers those rows carry. Rate limits and orders use the user id when Meta sends one,
 * while replies, receipts and malformed bodies carry the number, so an operator who types
 * either must reach both.
 */
export async function senderKeysOf(sql: Sql, customer: string): Promise<string[]> {
  const given = addressVariants(customer);
  const rows = await sql<{ key: string; is_number: boolean }[]>`
    SELECT sender_key AS key, false AS is_number FROM webhook_messages WHERE phone_number = ANY(${given}) AND sender_key IS NOT NULL
    UNION
    SELECT sender_key, false FROM orders WHERE phone_number = ANY(${given})
    UNION
    SELECT phone_number, true FROM webhook_messages WHERE sender_key = ANY(${given}) AND phone_number IS NOT NULL
    UNION
    SELECT phone_number, true FROM orders WHERE sender_key = ANY(${given})`;
  const found = rows.flatMap((row) => (row.is_number ? addressVariants(row.key) : [row.key]));
  return [...new Set([...given, ...found])];
}
