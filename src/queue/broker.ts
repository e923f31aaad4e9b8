import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { isWagateError, WagateError } from '../errors';
import type { Logger } from '../telemetry/logger';
import { createQueueInspector } from './queue-inspector';
import { redactUrl } from '../telemetry/redact-url';
import { failAfter } from '../settle-within';

export interface BrokerOptions {
  url: string;
  name: string;
  log: Logger;
  /**
   * Runs on every new connection, with its channel: declare topology, open consumers' channels.
   * `lost` aborts once the connection or that channel closes while setup runs: a listener for
   * its close added after it closed would never hear of it, so what setup hands the connection
   * to checks this first.
   */
  setup(channel: ConfirmChannel, connection: ChannelModel, lost: AbortSignal): Promise<void>;
  reconnectDelayMs?: { min: number; max: number };
  /**
   * Called once when a retry cannot help (setup threw an error whose `fatal` is true, such as
   * a queue declared with other arguments): the broker stops reconnecting.
   */
  onFatal?(error: Error): void;
}

export interface Broker {
  /** The live confirm channel, or null while disconnected. */
  channel(): ConfirmChannel | null;
  isConnected(): boolean;
  /** Since when every login attempt was refused (wrong user or password), in ms since the epoch; null otherwise. */
  loginRefusedSince(): number | null;
  /** Why the latest connection attempt failed; null before any failed. */
  lastConnectError(): string | null;
  /**
   * Since when the broker has blocked this connection's publishing (connection.blocked: a
   * memory or disk alarm), in ms since the epoch; null otherwise. A blocked broker reads nothing
   * more from the socket, so whatever is written meanwhile only piles up in this process.
   */
  blockedSince(): number | null;
  /** The error that stopped reconnecting for good, if one did. */
  fatalError(): Error | null;
  /** Resolves when connected, or rejects after timeoutMs. */
  waitUntilConnected(timeoutMs: number): Promise<void>;
  onConnected(listener: (channel: ConfirmChannel) => void): void;
  /**
   * Runs declarations on a channel opened for them and closed after, within a few seconds: a
   * declaration the broker refuses (a queue declared with other arguments) closes that channel,
   * not the one publishes or deliveries go on. Resolves to what the work returns; throws while
   * disconnected.
   */
  declareApart<T>(work: (channel: Channel) => Promise<T>): Promise<T>;
  /** Ready-message count of a queue via passive declare, or null if the broker is unreachable. */
  readyCount(queue: string): Promise<number | null>;
  /** Ready messages and consumers of a queue via passive declare, or null. */
  inspect(queue: string): Promise<{ messageCount: number; consumerCount: number } | null>;
  close(): Promise<void>;
}

/**
 * Keeps one connection and one confirm channel alive, redeclaring topology on each
 * reconnect. Written on amqplib directly rather than a wrapper that buffers publishes in
 * memory while disconnected: wagate's buffer is the Postgres outbox, which survives a crash,
 * so publishing must fail fast when the broker is away.
 */
/** How long close() waits for a connection attempt under way, and for each close it sends. */
const CLOSE_WAIT_MS = 5000;
/** How long a declaration on a channel of its own (declareApart) may take, its channel's opening included. */
const DECLARE_APART_TIMEOUT_MS = 5000;
/** AMQP heartbeat, in seconds: a silent peer is declared dead after about twice this. */
const HEARTBEAT_SECONDS = 15;
/**
 * A connection attempt that hears nothing for this long is abandoned and retried. Without it,
 * an attempt begun during a network partition waits on the kernel's SYN retries (up to about
 * two minutes, the last retry 32 s or more after the one before), long after the broker is back.
 */
const CONNECT_IDLE_TIMEOUT_MS = 3000;
/**
 * Reconnect backoff. The cap bounds how long a recovered broker waits for us: at most one
 * abandoned attempt plus one pause (about 5 s), so outbox rows held during an outage are
 * published within 10 s of its return.
 */
const RECONNECT_DELAY_MS = { min: 250, max: 2000 };

export function createBroker(options: BrokerOptions): Broker {
  const delays = options.reconnectDelayMs ?? RECONNECT_DELAY_MS;
  let connection: ChannelModel | null = null;
  let current: ConfirmChannel | null = null;
  let closing = false;
  let attempt = 0;
  let timer: NodeJS.Timeout | null = null;
  let connecting: Promise<void> | null = null;
  let loginRefusedAt: number | null = null;
  let blockedAt: number | null = null;
  /** The connection of the latest attempt: only its blocked/unblocked notices count. */
  let latest: ChannelModel | null = null;
  let fatal: Error | null = null;
  let lastConnectError: string | null = null;
  const listeners: ((channel: ConfirmChannel) => void)[] = [];

  function connect(): Promise<void> {
    timer = null;
    connecting = attemptConnection().finally(() => (connecting = null));
    return connecting;
  }

  async function attemptConnection(): Promise<void> {
    let model: ChannelModel | null = null;
    try {
      model = await amqp.connect(withHeartbeat(options.url), {
        clientProperties: { connection_name: options.name },
        timeout: CONNECT_IDLE_TIMEOUT_MS,
      });
      model.on('error', (error: Error) => options.log.warn({ err: error.message }, 'broker connection error'));
      // A close while setup runs finds no `connection` to lose yet; remembered here, it makes
      // this attempt fail and reconnect rather than keep a dead channel as the live one.
      const closedDuringSetup = new AbortController();
      model.on('close', () => {
        closedDuringSetup.abort();
        handleLoss(model!);
      });
      latest = model;
      model.on('blocked', (reason: string) => {
        if (model !== latest) return;
        blockedAt ??= Date.now();
        options.log.warn({ reason }, 'the broker blocked publishing (a resource alarm); publishes wait until it unblocks');
      });
      model.on('unblocked', () => {
        if (blockedAt === null || model !== latest) return;
        options.log.info({ blockedMs: Date.now() - blockedAt }, 'the broker unblocked publishing');
        blockedAt = null;
      });
      const channel = await model.createConfirmChannel();
      channel.on('error', (error: Error) => options.log.warn({ err: error.message }, 'broker channel error'));
      // A channel closed by the broker (e.g. a protocol error) is recovered with a fresh connection.
      channel.on('close', () => {
        closedDuringSetup.abort();
        if (current === channel) model?.close().catch(() => undefined);
      });
      await options.setup(channel, model, closedDuringSetup.signal);
      if (closing) {
        await model.close().catch(() => undefined);
        return;
      }
      if (closedDuringSetup.signal.aborted) throw new WagateError('BROKER_UNAVAILABLE', 'the broker connection closed while its topology was being declared');
      connection = model;
      current = channel;
      attempt = 0;
      loginRefusedAt = null;
      options.log.info({ broker: redactUrl(options.url) }, 'broker connected');
      listeners.forEach((listener) => listener(channel));
    } catch (error) {
      lastConnectError = (error as Error).message;
      if (isLoginRefused(error)) {
        loginRefusedAt ??= Date.now();
        const user = decodeURIComponent(new URL(options.url).username || 'guest');
        options.log.error({ err: (error as Error).message, broker: redactUrl(options.url), user },
          `the broker at ${redactUrl(options.url)} refused the login of user "${user}": check the user and password in AMQP_URL (or AMQP_URL_FILE)`);
      }
      blockedAt = null;
      await model?.close().catch(() => undefined);
      if (isFatal(error)) return stopForGood(error as Error);
      if (!isLoginRefused(error)) options.log.warn({ err: (error as Error).message, broker: redactUrl(options.url) }, 'broker connect failed');
      scheduleReconnect();
    }
  }

  function stopForGood(error: Error): void {
    fatal = error;
    options.log.error({ err: error.message, code: (error as { code?: string }).code }, 'broker setup cannot succeed; not reconnecting');
    options.onFatal?.(error);
  }

  function handleLoss(model: ChannelModel): void {
    if (connection !== model) return;
    connection = null;
    current = null;
    blockedAt = null;
    if (!closing) {
      options.log.warn('broker connection lost; reconnecting');
      scheduleReconnect();
    }
  }

  function scheduleReconnect(): void {
    if (closing || timer || fatal) return;
    const delay = Math.min(delays.max, delays.min * 2 ** attempt);
    attempt += 1;
    timer = setTimeout(() => void connect(), delay);
  }

  void connect();
  const inspector = createQueueInspector();

  return {
    channel: () => current,
    isConnected: () => current !== null,
    loginRefusedSince: () => loginRefusedAt,
    lastConnectError: () => lastConnectError,
    blockedSince: () => blockedAt,
    fatalError: () => fatal,
    onConnected(listener) {
      listeners.push(listener);
    },
    waitUntilConnected(timeoutMs) {
      if (current) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timeout = setTimeout(() => reject(new WagateError('BROKER_UNAVAILABLE', `broker not connected within ${timeoutMs} ms`)), timeoutMs);
        listeners.push(() => {
          clearTimeout(timeout);
          resolve();
        });
      });
    },
    async declareApart<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
      const model = connection;
      if (!model) throw new WagateError('BROKER_UNAVAILABLE', `not connected to the broker at ${redactUrl(options.url)}`);
      const opening = model.createChannel();
      const declared = opening.then(async (channel) => {
        channel.on('error', () => undefined);
        try {
          return await work(channel);
        } finally {
          await channel.close().catch(() => undefined);
        }
      });
      return failAfter(declared, DECLARE_APART_TIMEOUT_MS, () => new WagateError('BROKER_UNAVAILABLE', `the broker did not answer a declaration within ${DECLARE_APART_TIMEOUT_MS} ms`));
    },
    async readyCount(queue) {
      return (await this.inspect(queue))?.messageCount ?? null;
    },
    async inspect(queue) {
      if (!connection) return null;
      return inspector.inspect(connection, queue).catch(() => null);
    },
    async close() {
      closing = true;
      if (timer) clearTimeout(timer);
      // An attempt under way would go on declaring the topology after we return; let it
      // finish (it closes its own connection when it sees `closing`), within a bound.
      if (connecting) await withinCloseWait(connecting);
      const model = connection;
      const channel = current;
      connection = null;
      current = null;
      // Closing the channel first waits for the broker to take every ack sent on it; closing
      // only the connection can beat the last ack, and that message would come back.
      if (channel) await withinCloseWait(channel.close().catch(() => undefined));
      // A broker that never answers the close (hung, or closing the connection from its side
      // at the same moment) must not hold up a shutdown; the process exits soon after anyway.
      if (model) await withinCloseWait(model.close().catch(() => undefined));
    },
  };
}

function isFatal(error: unknown): boolean {
  return isWagateError(error, 'TOPOLOGY_CONFLICT');
}

function withinCloseWait(work: Promise<unknown>): Promise<unknown> {
  return Promise.race([work, new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
}

function withHeartbeat(url: string): string {
  return /[?&]heartbeat=/.test(url) ? url : `${url}${url.includes('?') ? '&' : '?'}heartbeat=${HEARTBEAT_SECONDS}`;
}

/** RabbitMQ answers a wrong user or password with 403 ACCESS_REFUSED during the handshake. */
function isLoginRefused(error: unknown): boolean {
  return /ACCESS[-_]REFUSED/.test((error as Error)?.message ?? '');
}
