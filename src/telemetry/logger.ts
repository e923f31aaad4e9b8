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
    destination ?? stdoutSink(),
  );
}

/**
 * pino's stdout writer, as pino makes it (asynchronous), whose broken pipe also reaches
 * process.stdout's error handlers (src/main.ts stops the process, as SIGPIPE would): pino
 * writes to the descriptor itself and drops a broken pipe silently, so a service that logs
 * only through it ran on unheard after the reader of its output had gone.
 */
function stdoutSink(): pino.DestinationStream {
  const sink = pino.destination({ dest: 1, sync: false });
  sink.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' && process.stdout.listenerCount('error') > 0) process.stdout.emit('error', error);
  });
  return sink;
}
