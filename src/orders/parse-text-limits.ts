/**
 * Longest message read, in characters (code points). A longer one gets a clarification instead of
 * an order: reading only its start would drop the items, counts or corrections written after the cut.
 */
export const MAX_TEXT_CHARS = 1000;

/** Most items one message may order; no chat order is longer, so a longer list is asked about, not cut. */
export const MAX_ITEMS = 20;

/**
 * Most phrases of any kind (items, exclusions, doubts) one message may hand to the product
 * match, each of which scans the catalogue in Postgres: "a a a …" made 500 doubts and
 * "no x, no x, …" 200 exclusions within the character cap, from a customer's every message.
 */
export const MAX_PHRASES = 2 * MAX_ITEMS;

/** True when the text has more than MAX_TEXT_CHARS code points; huge input is judged without splitting it all. */
export function exceedsTextCap(text: string): boolean {
  if (text.length <= MAX_TEXT_CHARS) return false;
  // A code point takes one or two UTF-16 units.
  if (text.length > MAX_TEXT_CHARS * 2) return true;
  return Array.from(text).length > MAX_TEXT_CHARS;
}
