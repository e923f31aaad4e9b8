/**
 * Which key and hash a Twilio signature was made with. By default Twilio signs with the
 * account's auth token and HMAC-SHA1. When a Webhook Rule of Twilio's Webhooks configuration
 * API matches the URL, it signs with the Rule's SharedKey and algorithm instead, over the same
 * string (the URL, then the sorted parameters), and says so in this header, e.g.
 * "key=<the key's id>,algorithm=HMAC_SHA256".
 */
export const TWILIO_SIGNATURE_SETTINGS_HEADER = 'x-twilio-webhooks-signature-settings';

export interface TwilioSecrets {
  authTokens: readonly string[];
  /** The secrets of the SharedKeys that Webhook Rules sign with; more than one during a rotation. */
  sharedKeys: readonly string[];
}

export type TwilioSigning =
  | { scheme: 'auth_token' | 'shared_key'; algorithm: 'sha1' | 'sha256'; secrets: readonly string[] }
  /** The header is there but not in Twilio's format, or names an algorithm Twilio does not sign with. */
  | { scheme: 'unreadable' };

const ALGORITHMS = new Map<string, 'sha1' | 'sha256'>([['HMAC_SHA256', 'sha256'], ['HMAC_SHA1', 'sha1']]);

/**
 * The header alone chooses between the two sets of secrets, so a forger gains nothing by
 * adding or dropping it: either way the signature must come from one of the shop's secrets.
 * An empty header counts as absent, as in Twilio's own libraries.
 */
export function twilioSigning(settings: string | undefined, secrets: TwilioSecrets): TwilioSigning {
  if (!settings?.trim()) return { scheme: 'auth_token', algorithm: 'sha1', secrets: secrets.authTokens };
  const fields = new Map<string, string>();
  for (const part of settings.split(',')) {
    const at = part.indexOf('=');
    if (at === -1) return { scheme: 'unreadable' };
    fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  const algorithm = ALGORITHMS.get((fields.get('algorithm') ?? '').toUpperCase());
  if (algorithm === undefined) return { scheme: 'unreadable' };
  return { scheme: 'shared_key', algorithm, secrets: secrets.sharedKeys };
}

/** A signature in base64, as Twilio sends it: 20 bytes (28 characters) for SHA-1, 32 (44) for SHA-256, each with one "=". */
export const TWILIO_SIGNATURE_FORMATS: Record<'sha1' | 'sha256', RegExp> = {
  sha1: /^[A-Za-z0-9+/]{27}=$/,
  sha256: /^[A-Za-z0-9+/]{43}=$/,
};
