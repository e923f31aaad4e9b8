/**
 * Seven or more digits in a row, allowing the spaces, dashes, dots and brackets people and
 * providers write numbers with, and a leading +: a phone number or a user id. Error codes
 * (Meta's 131047, Twilio's 21211) and HTTP statuses are shorter and stay readable.
 */
const NUMBER_LIKE = /\+?\d(?:[\s().-]*\d){6,}/g;

/**
 * A WhatsApp user id with letters in it (`US.a1b2c3d4e5f6g7h8`): a country code, a dot, and
 * the rest; the all-digit ones are caught as numbers.
 */
const USER_ID_LIKE = /\b[A-Z]{2}\.[A-Za-z0-9]{6,}\b/g;

/**
 * A provider's error text for logs, spans, dead letters' headers and the command line's lists.
 * Providers quote the customer's number in some of them ("The 'To' number +1555… is not a
 * valid phone number"); Postgres keeps the text, where `wagate erase` can reach it, but logs,
 * exported traces and terminals are out of its reach.
 */
export function withoutNumbers(text: string): string {
  return text.replace(USER_ID_LIKE, '<user id>').replace(NUMBER_LIKE, '<number>');
}
