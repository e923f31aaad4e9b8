/** The forms one customer's number takes: "+1555…", "1555…" (Meta wa_id), "whatsapp:+1555…" (Twilio). */
export function addressVariants(phone: string): string[] {
  const bare = phone.replace(/^whatsapp:/, '');
  const digits = bare.replace(/^\+/, '');
  return [...new Set([phone, bare, digits, `+${digits}`, `whatsapp:+${digits}`, `whatsapp:${bare}`])];
}
