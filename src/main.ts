#!/usr/bin/env node
// Must stay the first import: instrumentations patch modules as they are loaded.
import { flushTracing } from './tracing-bootstrap';
import { constants } from 'node:os';
import { checkWorkerConfig, loadConfig, type Config, type Source } from './config';
import { explainPostgresFailure } from './db/postgres-errors';
import { parseOptions } from './parse-options';
import { ERROR_CODES, exitStatusOf, isWagateError, UsageError, WagateError } from './errors';
import { devWorkerMetricsPort, readyLine, withDevDefaults } from './commands/dev';
import { startIngest } from './commands/ingest';
import { runMigrate } from './commands/migrate';
import { releaseSender } from './ledger/release';
import { explainGatewayAnswer, sendSample } from './commands/send';
import { isHelpRequest, USAGE, usageOf } from './commands/usage';
import { waitUntilReady } from './commands/wait-ready';
import { createLogger, type Logger } from './telemetry/logger';
import { startWorker, type RunningWorker } from './commands/worker';
import { waitForMigrations } from './commands/wait-for-migrations';
import { MAX_WAIT_MS, MAX_WORK_SHARDS } from './config';
import { reshard, reshardDepsFromConfig } from './worker/reshard';
import {
  cleanupCommand,
  dlqCommand,
  eraseCommand,
  fakeProviderCommand,
  phoneOption,
  productsCommand,
  repliesCommand,
  requeueStuckCommand,
  withSql,
} from './commands/operations';



type Command = (config: Config, log: Logger, args: string[]) => Promise<void>;

/** Commands that serve until a signal stops them; the others run once and end. */
const SERVICES = new Set(['ingest', 'worker', 'autoscaler', 'dev', 'fake-provider']);
/** Commands that take a first signal as a request to stop where nothing is left half done (stopRequested). */
const STOPS_AT_A_SAFE_POINT = new Set(['reshard']);

/** Aborted by a signal that came while a service was starting (see catchSignalsFromStart). */
const stopRequested = new AbortController();
let signalWhileStarting: NodeJS.Signals | null = null;

/** Commands configured by the environment alone: a flag given to one would be ignored, and `migrate --dry-run` would migrate. */
const TAKE_NO_ARGUMENTS = new Set(['migrate', 'ingest', 'worker', 'autoscaler', 'dev', 'requeue-stuck']);

const commands: Record<string, Command> = {
  // A shell's default WORK_SHARDS says nothing of the group's: only a count given is checked.
  migrate: (config, log) => runMigrate(config, log, { checkShardCount: Boolean(process.env.WORK_SHARDS) }),
  ingest: async (config, log) => {
    await waitForMigrations(config, log, stopRequested.signal);
    const ingest = await startIngest(config, log);
    stopOnSignal(log, () => ingest.stop());
    stopOnFatal(log, ingest.fatal, () => ingest.stop());
  },
  worker: async (config, log) => {
    // A setting only the worker needs is refused at once, not after the wait for migrations.
    checkWorkerConfig(config);
    await waitForMigrations(config, log, stopRequested.signal);
    const worker = await startWorker(config, log);
    stopOnSignal(log, () => worker.stop());
    exitOnRefusedLogin('worker', worker.broker, config.AMQP_URL, config.AUTH_FAILURE_EXIT_SECONDS, log);
    stopOnFatal(log, worker.fatal, () => worker.stop());
  },
  autoscaler: async (config, log) => {
    // Loaded on demand: the Kubernetes client is large, and no other command needs it.
    const { startAutoscaler } = await import('./commands/autoscaler');
    await waitForMigrations(config, log, stopRequested.signal);
    const autoscaler = await startAutoscaler(config, log);
    stopOnSignal(log, () => autoscaler.stop());
  },
  dev: async (config, log) => {
    const workerMetricsPort = devWorkerMetricsPort(config);
    await runMigrate(config, log);
    const ingest = await startIngest(config, log);
    const worker = await startWorker({ ...config, METRICS_PORT: workerMetricsPort }, log);
    process.stdout.write(`${readyLine(config.HOST, ingest.port, ingest.metricsPort, worker.metricsPort)}\n`);
    const stopBoth = async () => {
      await ingest.stop();
      await worker.stop();
    };
    stopOnSignal(log, stopBoth);
    // Its worker would consume nothing, while the ingest answers 200 from the outbox.
    exitOnRefusedLogin('dev', worker.broker, config.AMQP_URL, config.AUTH_FAILURE_EXIT_SECONDS, log);
    stopOnFatal(log, Promise.race([ingest.fatal, worker.fatal]), stopBoth);
  },
  products: (config, _log, args) => productsCommand(config, args),
  dlq: (config, log, args) => dlqCommand(config, log, args),
  replies: (config, _log, args) => repliesCommand(config, args),
  cleanup: (config, _log, args) => cleanupCommand(config, args),
  'requeue-stuck': (config) => requeueStuckCommand(config),
  erase: (config, log, args) => eraseCommand(config, log, args),
  reshard: async (config, _log, args) => {
    const { values } = parseOptions({ args, options: { to: { type: 'string' } } });
    const to = Number(values.to);
    if (!Number.isInteger(to) || to < 1 || to > MAX_WORK_SHARDS) throw new UsageError(`reshard needs --to N, a whole number from 1 to ${MAX_WORK_SHARDS}`);
    const report = await withSql(config, (sql) => reshard({ ...reshardDepsFromConfig(config, sql), stop: stopRequested.signal }, to));
    process.stdout.write(`resharded from ${report.from} to ${report.to}: moved ${report.moved} message(s), re-addressed ${report.retriesReaddressed} waiting retries\n` +
      `now deploy WORK_SHARDS=${report.to} to every ingest and worker; processes with WORK_SHARDS=${report.from} refuse to start\n`);
  },
  'fake-provider': async (config, log, args) => {
    const fake = await fakeProviderCommand(config, args);
    stopOnSignal(log, () => fake.stop());
  },
  'wait-ready': async (config, _log, args) => {
    const { values } = parseOptions({ args, options: { url: { type: 'string' }, timeout: { type: 'string', default: '60' } } });
    const url = urlOption(values.url) ?? `http://127.0.0.1:${config.PORT}`;
    await waitUntilReady(url, timeoutOption(values.timeout));
    process.stdout.write(`ready: ${url}\n`);
  },
  help: async () => undefined,
  send: async (config, _log, args) => {
    const { values } = parseOptions({
      args,
      options: {
        provider: { type: 'string', default: 'meta' },
        text: { type: 'string', default: '2x margherita, one coke' },
        from: { type: 'string', default: '15551234567' },
        id: { type: 'string' },
        to: { type: 'string' },
        url: { type: 'string' },
        timeout: { type: 'string', default: '10' },
      },
    });
    if (values.provider !== 'meta' && values.provider !== 'twilio') throw new UsageError('--provider must be meta or twilio');
    const timeoutMs = timeoutOption(values.timeout);
    const { timeout: _timeout, ...sample } = values;
    const result = await sendSample(config, { ...sample, url: urlOption(values.url), provider: values.provider, text: values.text!, from: values.from!, timeoutMs });
    process.stdout.write(`${result.status} ${result.body}\nmessage id: ${result.messageId}\n`);
    if (result.status >= 300) throw new WagateError('GATEWAY_REFUSED', explainGatewayAnswer(result.status, values.provider));
  },
  release: async (config, log, args) => {
    const { values } = parseOptions({ args, options: { phone: { type: 'string', multiple: true }, source: { type: 'string' } } });
    const phone = phoneOption('release', values.phone);
    if (values.source !== undefined && values.source !== 'whatsapp' && values.source !== 'twilio') {
      throw new UsageError('--source must be whatsapp or twilio');
    }
    // No statement timeout, as for erase: finding the customer's keys reads the ledger by number, which has no index.
    const result = await withSql(config, (sql) => releaseSender(sql, phone, values.source as Source | undefined));
    log.info({ released: result.released }, 'released rate-limited messages');
    process.stdout.write(`released ${result.released} rate_limited message(s); running ingest processes publish them\n`);
    // A mistyped number looked like a release that found nothing to do.
    if (result.released === 0 && result.withoutContent === 0 && result.countersReset === 0) {
      process.stdout.write(`nothing held or counted for ${phone}: check the number (or its Meta user id)\n`);
    }
    if (result.withoutContent > 0) {
      process.stdout.write(`${result.withoutContent} more could not be released: held past PERSONAL_DATA_RETENTION_DAYS, their content is gone\n`);
    }
  },
};

/**
 * A --url as the gateway's base, http or https: "127.0.0.1:8080" without its scheme was polled
 * until the timeout, failing each time, and then blamed on a gateway not running.
 */
function urlOption(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const url = URL.parse(text);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new UsageError(`--url must be the gateway's address with its scheme, such as http://127.0.0.1:3000 (got ${JSON.stringify(text)})`);
  }
  return text;
}

/**
 * A --timeout in seconds, as the whole milliseconds a timer takes: 2.01 s is 2009.999… ms, which
 * AbortSignal.timeout refuses, and past MAX_WAIT_MS Node's timers fire at once.
 */
function timeoutOption(text: string | undefined): number {
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError('--timeout must be a positive number of seconds');
  if (seconds * 1000 > MAX_WAIT_MS) throw new UsageError(`--timeout must be at most ${MAX_WAIT_MS / 1000} seconds (24 hours)`);
  return Math.max(1, Math.round(seconds * 1000));
}

/** How often a worker checks whether its broker login has been refused for too long. */
const LOGIN_CHECK_INTERVAL_MS = 1000;

/**
 * Wrong credentials do not heal by waiting: after AUTH_FAILURE_EXIT_SECONDS of refused logins
 * the worker exits 1 with a message that says so, and the crash shows where it runs.
 */
function exitOnRefusedLogin(command: 'worker' | 'dev', broker: RunningWorker['broker'], amqpUrl: string, limitSeconds: number, log: Logger): void {
  const timer = setInterval(() => {
    const since = broker.loginRefusedSince();
    if (since === null || Date.now() - since < limitSeconds * 1000) return;
    const host = new URL(amqpUrl).host;
    const message = `the broker at ${host} has refused this worker's login for ${limitSeconds} s: the user or password in AMQP_URL (or AMQP_URL_FILE) is wrong; correct it and start wagate ${command} again`;
    log.error({ broker: host }, message);
    log.flush();
    process.stderr.write(`wagate ${command}: failed: ${message}\n`);
    process.exit(ERROR_CODES.BROKER_UNAVAILABLE.exitStatus);
  }, LOGIN_CHECK_INTERVAL_MS);
  timer.unref();
}

/**
 * A broker setup that can never succeed (a queue declared with other arguments) stops the
 * process with exit 1, so that the rollout halts where operators look, instead of a pod that
 * looks ready while it reconnects forever.
 */
function stopOnFatal(log: Logger, fatal: Promise<Error>, stop: () => Promise<void>): void {
  void fatal.then(async (error) => {
    log.error({ err: error.message }, 'stopping: the broker setup cannot succeed with this configuration');
    await stop().catch(() => undefined);
    await flushTracing(log);
    log.flush();
    process.exit(1);
  });
}

/**
 * Handles SIGTERM and SIGINT from the moment a command starts. In a container wagate runs as
 * PID 1, and PID 1 ignores a signal it has no handler for: a worker told to stop while it
 * waited for migrations used to start anyway, take its shards, and be killed at the end of
 * its grace period with messages in hand. A service now stops waiting at once, or stops
 * gracefully as soon as it has started (stopOnSignal); a reshard stops at its next safe point
 * (its pause undone if nothing was moved); any other command ends at once, as it would outside
 * a container. A second signal always ends the process.
 */
function catchSignalsFromStart(name: string): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    if (STOPS_AT_A_SAFE_POINT.has(name) && !stopRequested.signal.aborted) {
      process.stderr.write(`wagate ${name}: ${signal}: stopping at the next safe point (a second signal ends it at once; should it have begun to move messages, the workers stay paused until wagate reshard is run again)\n`);
      stopRequested.abort(new Error(signal));
      return;
    }
    if (!SERVICES.has(name) || stopRequested.signal.aborted) {
      process.stderr.write(`wagate ${name}: stopped by ${signal}\n`);
      process.exit(128 + constants.signals[signal]);
    }
    process.stderr.write(`wagate ${name}: ${signal} while starting; stopping as soon as the start allows\n`);
    signalWhileStarting = signal;
    stopRequested.abort(new Error(`stopped by ${signal} while starting`));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}

let releaseStartSignals: () => void = () => undefined;

/**
 * The reader of stdout went away (`wagate dlq list | head -1`, or a parent that died). Node
 * ignores SIGPIPE and would crash on the unhandled EPIPE with a stack trace instead. As the
 * signal would, a command that runs once ends quietly with 128 + 13; a service stops as on
 * SIGTERM, finishing what it holds.
 */
function endWhenStdoutCloses(name: string): void {
  let closed = false;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    if (closed) return;
    closed = true;
    if (SERVICES.has(name)) process.kill(process.pid, 'SIGTERM');
    else process.exit(128 + constants.signals.SIGPIPE);
  });
}

function stopOnSignal(log: Logger, stop: () => Promise<void>): void {
  releaseStartSignals();
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down gracefully');
    stop()
      .then(() => flushTracing(log))
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
  // A signal that came while the service started: stop now that it can stop gracefully.
  if (signalWhileStarting) onSignal(signalWhileStarting);
}

/** node:util parseArgs reports an unknown or malformed option with one of these codes. */
function isArgumentError(error: unknown): boolean {
  return String((error as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
}

async function main(argv: string[]): Promise<void> {
  const [name, ...args] = argv;
  if (name === undefined) return usageExit('no command given', USAGE);
  if (name === 'help' || name === '--help' || name === '-h') {
    const [topic, ...more] = args;
    if (topic !== undefined && !commands[topic]) return usageExit(`unknown command "${topic}"`, USAGE);
    if (more.length > 0) return usageExit(`${name} takes one command at most (got also "${more.join(' ')}")`, USAGE);
    process.stdout.write(topic ? usageOf(topic) : USAGE);
    process.exit(0);
  }
  const command = commands[name];
  if (!command) return usageExit(`unknown command "${name}"`, USAGE);
  if (isHelpRequest(args)) {
    process.stdout.write(usageOf(name));
    process.exit(0);
  }
  if (args.length > 0 && TAKE_NO_ARGUMENTS.has(name)) {
    return usageExit(`${name} takes no arguments (got "${args.join(' ')}"); its settings come from the environment`, usageOf(name));
  }
  // The fake providers are a development tool too: production's checks (PUBLIC_BASE_URL with a
  // Twilio token, say) would stop one started beside a demo gateway.
  const environment = name === 'dev' || name === 'fake-provider' ? withDevDefaults(process.env) : process.env;
  let log: Logger | undefined;
  let config: Config | undefined;
  releaseStartSignals = catchSignalsFromStart(name);
  endWhenStdoutCloses(name);
  try {
    config = loadConfig(environment);
    log = createLogger(config.LOG_LEVEL, `wagate-${name}`);
    await command(config, log, args);
  } catch (error) {
    const message = (error as Error).message;
    log?.flush();
    // Only the stop itself ends quietly: a start that failed for its own reason says so.
    if (stopRequested.signal.aborted && error === stopRequested.signal.reason) {
      process.stderr.write(`wagate ${name}: stopped before it started\n`);
      process.exit(0);
    }
    if (isWagateError(error, 'USAGE_INVALID') || isArgumentError(error)) return usageExit(`${name}: ${message}`, usageOf(name));
    if (isWagateError(error, 'CONFIG_INVALID')) process.stderr.write(`wagate ${name}: ${message}\n`);
    else process.stderr.write(`wagate ${name}: failed: ${message}${hintFor(error, config)}\n`);
    process.exit(exitStatusOf(error));
  }
}

/** What to do next, for the failures a person can fix: a database that refuses the login or cannot be reached. */
function hintFor(error: unknown, config: Config | undefined): string {
  const hint = config ? explainPostgresFailure(error, config.DATABASE_URL) : null;
  return hint ? `\n  ${hint}` : '';
}

function usageExit(problem: string, usage: string): never {
  process.stderr.write(`wagate: ${problem}\n\n${usage}`);
  process.exit(ERROR_CODES.USAGE_INVALID.exitStatus);
}

void main(process.argv.slice(2));
