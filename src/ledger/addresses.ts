/**
 * The forms one customer's number takes: "+1555…", "1555…" (Meta wa_id), "whatsapp:+1555…"
 * (Twilio), and, where WhatsApp's id of a number is not its dialled form, that form too.
 */
export function addressVariants(phone: string): string[] {
  const bare = phone.replace(/^whatsapp:/, '');
  const digits = bare.replace(/^\+/, '');
  const alternates = whatsAppAlternates(digits).flatMap((other) => [other, `+${other}`, `whatsapp:+${other}`]);
  return [...new Set([phone, bare, digits, `+${digits}`, `whatsapp:+${digits}`, `whatsapp:${bare}`, ...alternates])];
}

/**
 * The other digits WhatsApp knows the same mobile number by: Mexico's ids keep the "1" after 52
 * that the country dropped from dialling in 2019, Argentina's the "9" of a mobile after 54 that
 * people leave out, and Brazil's older ids lack the ninth digit its mobiles gained. A customer
 * who gives "+52 55 1234 5678" was recorded as 5215512345678, and an erase by their word found
 * nothing. Each alternate is the same line: Mexico's numbers never start with 1, Argentina's
 * numbers are one pool for fixed and mobile lines, and Brazil's 8-digit mobiles (6 to 9 first)
 * are no landline's (2 to 5).
 */
function whatsAppAlternates(digits: string): string[] {
  const mexico = /^52(1?)(\d{10})$/.exec(digits);
  if (mexico) return [mexico[1] ? `52${mexico[2]}` : `521${mexico[2]}`];
  const argentina = /^54(9?)(\d{10})$/.exec(digits);
  if (argentina) return [argentina[1] ? `54${argentina[2]}` : `549${argentina[2]}`];
  const brazil = /^55(\d{2})(9?)([6-9]\d{7})$/.exec(digits);
  if (brazil) return [brazil[2] ? `55${brazil[1]}${brazil[3]}` : `55${brazil[1]}9${brazil[3]}`];
  return [];
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
