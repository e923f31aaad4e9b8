import { TWILIO_WEBHOOK_PATH, type FormParams } from '../../src/webhooks/twilio';
import { twilioSignature } from '../../src/webhooks/samples';
import { TWILIO_TOKEN } from './ingest';

export function signFor(params: FormParams, publicBaseUrl: string, token = TWILIO_TOKEN): string {
  return twilioSignature(token, publicBaseUrl + TWILIO_WEBHOOK_PATH, params);
}
