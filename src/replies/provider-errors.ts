import { z } from 'zod';

/**
 * Graph's own error object: a numeric code, with the trace id or the exception type Graph puts
 * beside it. A proxy in between may answer JSON with an `error` of its own (Google's front ends:
 * `{"error":{"code":503,"status":"UNAVAILABLE"}}`) after the request went out; read as Graph's,
 * its 503 said "not taken" and the reply was sent twice.
 */
const graphErrorSchema = z
  .looseObject({ code: z.number(), is_transient: z.boolean().optional(), fbtrace_id: z.string().optional(), type: z.string().optional() })
  .refine((error) => error.fbtrace_id !== undefined || error.type !== undefined);

/**
 * Twilio's own error: a numeric code and the link to its page in Twilio's docs, which every one
 * carries. An Envoy-based proxy's JSON answer (`{"code":14,"message":"upstream connect error"}`)
 * has a code too, and its 503 would otherwise have said "not taken".
 */
const twilioErrorSchema = z.looseObject({ code: z.number(), more_info: z.string().startsWith('https://www.twilio.com/docs/errors/') });

export interface ProviderError {
  code: number;
  isTransient: boolean;
}

/** The `error` of a Graph answer, when it is Graph's own; null for anyone else's, or none. */
export function graphError(error: unknown): ProviderError | null {
  const parsed = graphErrorSchema.safeParse(error);
  return parsed.success ? { code: parsed.data.code, isTransient: parsed.data.is_transient === true } : null;
}

/** A Twilio answer's error, when it is Twilio's own; null for anyone else's, or none. */
export function twilioError(body: unknown): ProviderError | null {
  const parsed = twilioErrorSchema.safeParse(body);
  return parsed.success ? { code: parsed.data.code, isTransient: false } : null;
}
