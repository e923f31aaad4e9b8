/** The one part of a request that says why its signature was refused (an InboundRequest has it). */
interface SignedRequest {
  header(name: string): string | undefined;
}

/** Why a signature was refused, for the log and the metric; never the signature or a secret. */
export type SignatureRejection = 'missing_header' | 'bad_format' | 'no_secret_configured' | 'no_match';

export const SIGNATURE_REJECTIONS: readonly SignatureRejection[] = ['missing_header', 'bad_format', 'no_secret_configured', 'no_match'];

const META_SIGNATURE = /^sha256=[0-9a-fA-F]{64}$/;
/** HMAC-SHA1 in base64: 20 bytes, 28 characters with one "=". */
const TWILIO_SIGNATURE = /^[A-Za-z0-9+/]{27}=$/;

/**
 * Called only after a signature was refused, so it costs nothing on the genuine path. It
 * repeats the cheap checks of the verifier to say which one failed; "no_match" means the
 * header was well formed but no configured secret produced it (a wrong or rotated secret).
 */
export function metaRejection(request: SignedRequest, secrets: readonly string[]): SignatureRejection {
  return classify(request.header('x-hub-signature-256'), META_SIGNATURE, secrets);
}

export function twilioRejection(request: SignedRequest, tokens: readonly string[]): SignatureRejection {
  return classify(request.header('x-twilio-signature'), TWILIO_SIGNATURE, tokens);
}

function classify(header: string | undefined, format: RegExp, secrets: readonly string[]): SignatureRejection {
  if (!header) return 'missing_header';
  if (!format.test(header)) return 'bad_format';
  if (secrets.every((secret) => secret.length === 0)) return 'no_secret_configured';
  return 'no_match';
}
