/** The webhook paths, in a module that imports nothing, so that any layer may read them. */
export const META_WEBHOOK_PATH = '/api/v1/whatsapp-hardened/webhook';
export const TWILIO_WEBHOOK_PATH = '/api/v1/whatsapp-hardened/twilio/webhook';

const WEBHOOK_PATHS = new Set([META_WEBHOOK_PATH, TWILIO_WEBHOOK_PATH]);

/**
 * True for a POST that reaches a webhook handler: the exact path, and the variants express
 * routes to the same handler (any letter case, one trailing slash).
 */
export function isWebhookPost(method: string | undefined, url: string | undefined): boolean {
  if (method !== 'POST' || !url) return false;
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  if (WEBHOOK_PATHS.has(path)) return true;
  const lower = path.toLowerCase();
  return WEBHOOK_PATHS.has(lower.endsWith('/') ? lower.slice(0, -1) : lower);
}
