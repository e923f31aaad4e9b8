import pino from 'pino';
import { activeTraceIds } from './spans';

export type Logger = pino.Logger;

/**
 * Structured JSON logs. Anything that could carry a secret, a signature or a message body
 * is redacted by path, as a safety net behind the rule of never logging them at all.
 */
export function createLogger(level: string, name: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      name,
      level,
      base: { service: name },
      // Correlates each line with the trace it belongs to, when tracing runs.
      mixin: activeTraceIds,
      redact: {
        paths: [
          'password',
          'token',
          'secret',
          'signature',
          'body',
          'rawBody',
          'payload',
          'text',
          'headers.authorization',
          'headers["x-hub-signature-256"]',
          'headers["x-twilio-signature"]',
          '*.password',
          '*.token',
          '*.secret',
          '*.body',
          '*.payload',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
