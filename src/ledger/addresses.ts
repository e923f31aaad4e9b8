/** The forms one customer's number takes: "+1555…", "1555…" (Meta wa_id), "whatsapp:+1555…" (Twilio). */
export function addressVariants(phone: string): string[] {
  const bare = phone.replace(/^whatsapp:/, '');
  const digits = bare.replace(/^\+/, '');
  return [...new Set([phone, bare, digits, `+${digits}`, `whatsapp:+${digits}`, `whatsapp:${bare}`])];
}

/** Meta's business-scoped user id: a country code, a dot, then letters and digits ("US.13491208655302741918"). */
export const META_USER_ID = /^[A-Z]{2}\.[A-Za-z0-9]+$/;

/** What people type or paste between a number's digits. */
const PHONE_SEPARATORS = /[\s\u00a0\-.()/]/g;
/** E.164 allows at most 15 digits, and its country codes never start with 0. */
const E164_DIGITS = /^[1-9]\d{5,14}$/;

/**
 * A number as an operator types it ("+1 (555) 040-0021", "0015550400021", "WhatsApp:+1…")
 * in the "+digits" form wagate matches on, or null when it is not an international number.
 * Stored numbers carry no separators, so a number typed with them would match nothing, and
 * an erasure would report zeros while the customer's data stayed.
 */
export function normalisePhone(input: string): string | null {
  const compact = input.trim().replace(/^whatsapp:/i, '').replace(PHONE_SEPARATORS, '');
  const digits = compact.startsWith('+') ? compact.slice(1) : compact.startsWith('00') ? compact.slice(2) : compact;
  return E164_DIGITS.test(digits) ? `+${digits}` : null;
}
