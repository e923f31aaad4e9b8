import type { Config } from '../config';
import { createReplyClient } from './reply-clients';

/** The reply client from the configuration; the status-callback path is the Twilio webhook's, which the caller knows. */
export function replyClientFromConfig(config: Config, twilioWebhookPath: string) {
  return createReplyClient({
    graphApiUrl: config.WHATSAPP_GRAPH_API_URL,
    graphApiVersion: config.WHATSAPP_GRAPH_API_VERSION,
    accessToken: config.WHATSAPP_ACCESS_TOKEN,
    twilioApiUrl: config.TWILIO_API_URL,
    twilioAccountSid: config.TWILIO_ACCOUNT_SID,
    twilioAuthToken: config.TWILIO_AUTH_TOKEN[0],
    // Twilio sends a reply's status callbacks only where the send asks for them.
    twilioStatusCallback: config.PUBLIC_BASE_URL
      ? `${config.PUBLIC_BASE_URL.replace(/\/+$/, '')}${twilioWebhookPath}${config.TWILIO_URL_FRAGMENT ?? ''}`
      : undefined,
    timeoutMs: config.REPLY_TIMEOUT_MS,
  });
}
