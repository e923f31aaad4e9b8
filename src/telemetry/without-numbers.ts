/**
 * Seven or more digits in a row, allowing the spaces, dashes, dots and brackets people and
 * providers write numbers with, and a leading +: a phone number or a user id. Error codes
 * (Meta's 131047, Twilio's 21211) and HTTP statuses are shorter and stay readable.
 */
const NUMBER_LIKE = /\+?\d(?:[\s().-]*\d){6,}/g;

/**
 * A provider's error text for logs and spans. Providers quote the customer's number in some
 * of them ("The 'To' number +1555… is not a valid phone number"); Postgres keeps the text,
 * where `wagate erase` can reach it, but logs and exported traces are out of its reach.
 */
export function withoutNumbers(text: string): string {
  return text.replace(NUMBER_LIKE, '<number>');
}
