#!/usr/bin/env node
// Must stay the first import: instrumentations patch modules as they are loaded.
import { tracingSdk } from './tracing-bootstrap';
import { parseArgs } from 'node:util';
import { loadConfig, type Config, type Source } from './config';
import { ERROR_CODES, exitStatusOf, isWagateError, UsageError, WagateError } from './errors';
import { startIngest } from './commands/ingest';
import { runMigrate } from './commands/migrate';
import { releaseSender } from './ledger/release';
import { requeueStuckMessages, stuckAfterMs } from './ledger/stuck';
import { sendSample } from './commands/send';
import { createLogger, type Logger } from './telemetry/logger';
import { startWorker } from './commands/worker';
import {
  cleanupCommand,
  dlqCommand,
  eraseCommand,
  fakeProviderCommand,
  productsCommand,
  repliesCommand,
  withSql,
} from './commands/operations';

const USAGE = `usage: wagate <command> [options]

commands:
  migrate                         apply database migrations (idempotent, safe to run concurrently)
  ingest                          run the HTTP edge
  worker                          consume queued messages: orders and replies
  dev                             migrate, then run ingest and worker in one process (development)
  send [--provider meta|twilio] [--text T] [--from P] [--id ID] [--to N] [--url URL]
                                  post a correctly signed sample webhook to a running gateway
  release --phone P [--source whatsapp|twilio]
                                  re-queue a sender's rate_limited messages
  products import FILE.csv        load the catalog (header: sku,name,price,currency,aliases)
  dlq list | replay [--id ID ...] | purge [--yes]
                                  inspect the dead letters and put them back
  replies unknown | resend --id ID | settle --id ID --as sent|failed
                                  list replies whose outcome is unknown; resend one on purpose,
                                  or record what the provider says happened
  requeue-stuck                   put back messages whose queue copy was lost (see WagateMessagesStuck)
  cleanup [--days N]              retention cleanup (default RETENTION_DAYS)
  erase --phone P                 erase one customer's personal data everywhere it is kept
  fake-provider [--port 4010]     a local fake of the Graph API and Twilio REST, for demos
`;


type Command = (config: Config, log: Logger, args: string[]) => Promise<void>;

const commands: Record<string, Command> = {
  migrate: (config, log) => runMigrate(config, log),
  ingest: async (config, log) => {
    const ingest = await startIngest(config, log);
    stopOnSignal(log, () => ingest.stop());
    stopOnFatal(log, ingest.fatal, () => ingest.stop());
  },
  worker: async (config, log) => {
    const worker = await startWorker(config, log);
    stopOnSignal(log, () => worker.stop());
    stopOnFatal(log, worker.fatal, () => worker.stop());
  },
  dev: async (config, log) => {
    await runMigrate(config, log);
    const ingest = await startIngest(config, log);
    // One process, two metrics endpoints: the worker's sits on the next port.
    const worker = await startWorker({ ...config, METRICS_PORT: config.METRICS_PORT === 0 ? 0 : config.METRICS_PORT + 1 }, log);
    const stopBoth = async () => {
      await ingest.stop();
      await worker.stop();
    };
    stopOnSignal(log, stopBoth);
    stopOnFatal(log, Promise.race([ingest.fatal, worker.fatal]), stopBoth);
  },
  products: (config, _log, args) => productsCommand(config, args),
  dlq: (config, log, args) => dlqCommand(config, log, args),
  replies: (config, _log, args) => repliesCommand(config, args),
  cleanup: (config, _log, args) => cleanupCommand(config, args),
  'requeue-stuck': async (config) => {
    const requeued = await withSql(config, (sql) => requeueStuckMessages(sql, stuckAfterMs(config.RETRY_DELAYS_MS)));
    process.stdout.write(`requeued ${requeued} stuck message(s); running ingest processes publish them\n`);
  },
  erase: (config, log, args) => eraseCommand(config, log, args),
  'fake-provider': async (_config, log, args) => {
    const fake = await fakeProviderCommand(args);
    stopOnSignal(log, () => fake.stop());
  },
  send: async (config, _log, args) => {
    const { values } = parseArgs({
      args,
      options: {
        provider: { type: 'string', default: 'meta' },
        text: { type: 'string', default: '2x margherita, one coke' },
        from: { type: 'string', default: '15551234567' },
        id: { type: 'string' },
        to: { type: 'string' },
        url: { type: 'string' },
      },
    });
    if (values.provider !== 'meta' && values.provider !== 'twilio') throw new UsageError('--provider must be meta or twilio');
    const result = await sendSample(config, { ...values, provider: values.provider, text: values.text!, from: values.from! });
    process.stdout.write(`${result.status} ${result.body}\nmessage id: ${result.messageId}\n`);
    if (result.status >= 300) throw new WagateError('GATEWAY_REFUSED', `the gateway answered ${result.status}`);
  },
  release: async (config, log, args) => {
    const { values } = parseArgs({ args, options: { phone: { type: 'string' }, source: { type: 'string' } } });
    if (!values.phone) throw new UsageError('release needs --phone');
    if (values.source !== undefined && values.source !== 'whatsapp' && values.source !== 'twilio') {
      throw new UsageError('--source must be whatsapp or twilio');
    }
    const result = await withSql(config, (sql) => releaseSender(sql, values.phone!, values.source as Source | undefined), config.DB_STATEMENT_TIMEOUT_MS);
    log.info({ released: result.released }, 'released rate-limited messages');
    process.stdout.write(`released ${result.released} rate_limited message(s); running ingest processes publish them\n`);
    if (result.withoutContent > 0) {
      process.stdout.write(`${result.withoutContent} more could not be released: held past PERSONAL_DATA_RETENTION_DAYS, their content is gone\n`);
    }
  },
};

/**
 * A broker setup that can never succeed (a queue declared with other arguments) stops the
 * process with exit 1, so that the rollout halts where operators look, instead of a pod that
 * looks ready while it reconnects forever.
 */
function stopOnFatal(log: Logger, fatal: Promise<Error>, stop: () => Promise<void>): void {
  void fatal.then(async (error) => {
    log.error({ err: error.message }, 'stopping: the broker setup cannot succeed with this configuration');
    await stop().catch(() => undefined);
    await tracingSdk?.shutdown().catch(() => undefined);
    log.flush();
    process.exit(1);
  });
}

function stopOnSignal(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down gracefully');
    stop()
      .then(() => tracingSdk?.shutdown())
      .then(
        () => process.exit(0),
        (error: Error) => {
          log.error({ err: error.message }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function main(argv: string[]): Promise<void> {
  const [name, ...args] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    process.stderr.write(name ? `wagate: unknown command "${name}"\n\n${USAGE}` : USAGE);
    process.exit(ERROR_CODES.USAGE_INVALID.exitStatus);
  }
  const defaults = name === 'dev' ? { NODE_ENV: 'development' } : {};
  let log: Logger | undefined;
  try {
    const config = loadConfig({ ...defaults, ...process.env });
    log = createLogger(config.LOG_LEVEL, `wagate-${name}`);
    await command(config, log, args);
  } catch (error) {
    const message = (error as Error).message;
    if (isWagateError(error, 'USAGE_INVALID')) process.stderr.write(`wagate ${name}: ${message}\n\n${USAGE}`);
    else if (isWagateError(error, 'CONFIG_INVALID')) process.stderr.write(`wagate ${name}: ${message}\n`);
    else process.stderr.write(`wagate ${name}: failed: ${message}\n`);
    log?.flush();
    process.exit(exitStatusOf(error));
  }
}

void main(process.argv.slice(2));
