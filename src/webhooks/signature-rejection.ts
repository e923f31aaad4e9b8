import { readSignedBodyHash } from './twilio-json-body';
import { TWILIO_SIGNATURE_FORMATS, TWILIO_SIGNATURE_SETTINGS_HEADER, twilioSigning, type TwilioSecrets } from './twilio-signing';

/** The one part of a request that says why its signature was refused (an InboundRequest has it). */
interface SignedRequest {
  header(name: string): string | undefined;
}

/** Why a signature was refused, for the log and the metric; never the signature or a secret. */
export type SignatureRejection = 'missing_header' | 'bad_format' | 'no_secret_configured' | 'no_match' | 'too_many_params';

export const SIGNATURE_REJECTIONS: readonly SignatureRejection[] = ['missing_header', 'bad_format', 'no_secret_configured', 'no_match', 'too_many_params'];

const META_SIGNATURE = /^sha256=[0-9a-fA-F]{64}$/;

/**
 * More form parameters than any Twilio webhook sends (an inbound WhatsApp message has about 30,
 * and 50 with ten media). Decoding and sorting a 3 MiB form of half a million empty parameters
 * held the event loop for a second, and anyone can send one: a form beyond this is refused
 * before it is decoded.
 */
export const MAX_TWILIO_FORM_PARAMS = 1000;

/** Whether a form body has more than `limit` parameters, counted by its "&" bytes without decoding it. */
export function exceedsFormParams(rawBody: Buffer, limit: number): boolean {
  let at = -1;
  for (let separators = 0; separators < limit; separators += 1) {
    at = rawBody.indexOf(0x26, at + 1);
    if (at === -1) return false;
  }
  return true;
}

/**
 * Called only after a signature was refused, so it costs nothing on the genuine path. It
 * repeats the cheap checks of the verifier to say which one failed; "no_match" means the
 * header was well formed but no configured secret produced it (a wrong or rotated secret).
 */
export function metaRejection(request: SignedRequest, secrets: readonly string[]): SignatureRejection {
  return classify(request.header('x-hub-signature-256'), META_SIGNATURE, secrets);
}

/** A settings header that names no algorithm Twilio signs with is a "bad_format", as a malformed signature is. */
export function twilioRejection(request: SignedRequest & { rawBody: Buffer; originalUrl: string }, secrets: TwilioSecrets): SignatureRejection {
  const signing = twilioSigning(request.header(TWILIO_SIGNATURE_SETTINGS_HEADER), secrets);
  const header = request.header('x-twilio-signature');
  if (signing.scheme === 'unreadable') return header ? 'bad_format' : 'missing_header';
  const reason = classify(header, TWILIO_SIGNATURE_FORMATS[signing.algorithm], signing.secrets);
  const isForm = readSignedBodyHash(request.originalUrl) === undefined;
  return reason === 'no_match' && isForm && exceedsFormParams(request.rawBody, MAX_TWILIO_FORM_PARAMS) ? 'too_many_params' : reason;
}

function classify(header: string | undefined, format: RegExp, secrets: readonly string[]): SignatureRejection {
  if (!header) return 'missing_header';
  if (!format.test(header)) return 'bad_format';
  if (secrets.every((secret) => secret.length === 0)) return 'no_secret_configured';
  return 'no_match';
}
