/**
 * Longest message read, in characters (code points). A longer one gets a clarification instead of
 * an order: reading only its start would drop the items, counts or corrections written after the cut.
 */
export const MAX_TEXT_CHARS = 1000;

/** Most items one message may order; no chat order is longer, so a longer list is asked about, not cut. */
export const MAX_ITEMS = 20;

/** True when the text has more than MAX_TEXT_CHARS code points; huge input is judged without splitting it all. */
export function exceedsTextCap(text: string): boolean {
  if (text.length <= MAX_TEXT_CHARS) return false;
  // A code point takes one or two UTF-16 units.
  if (text.length > MAX_TEXT_CHARS * 2) return true;
  return Array.from(text).length > MAX_TEXT_CHARS;
}
