import { metaMessageId, senderPhone, twilioMessageSid } from './ids.ts';
import { ORDER_TEXT, signedMetaRequest, signedTwilioRequest, type PlannedRequest } from './payloads.ts';
import { nowSeconds, senderIndex, type RunContext } from './scenario.ts';

/** A new, genuine Meta order from the iteration's sender. */
export function genuineMeta(scenario: string, iteration: number, run: RunContext, tags: Record<string, string> = {}): Promise<PlannedRequest> {
  const from = senderPhone(run.runId, senderIndex(iteration, run.settings));
  const message = { id: metaMessageId(run.runId, scenario, iteration), from, text: ORDER_TEXT, timestampSeconds: nowSeconds() };
  return signedMetaRequest(run.settings.metaSecret, message, { kind: 'meta', slo: 'ack', ...tags });
}

/** A new, genuine Twilio order from the iteration's sender. */
export function genuineTwilio(iteration: number, run: RunContext, tags: Record<string, string> = {}): Promise<PlannedRequest> {
  const from = `whatsapp:+${senderPhone(run.runId, senderIndex(iteration, run.settings))}`;
  const message = { sid: twilioMessageSid(run.runId, iteration), from, text: ORDER_TEXT };
  return signedTwilioRequest(run.settings.twilioToken, run.settings.publicBaseUrl, message, { kind: 'twilio', slo: 'ack', ...tags });
}
