import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError } from './errors';
import { FAILPOINTS } from './failpoints';

/** Meta retries a failed delivery for about 7 days, so the window must exceed that. */
export const DEFAULT_REPLAY_WINDOW_SECONDS = 8 * 24 * 3600;
/** Clock skew tolerated for a message timestamp that lies in the future. */
export const FUTURE_SKEW_SECONDS = 300;

/** The most work shards (quorum queues) a group may have; the stored count is checked against it too. */
export const MAX_WORK_SHARDS = 256;
/** Messages a worker aims to hold over all its shards (see shardPrefetch). */
export const DEFAULT_WORKER_MESSAGES_IN_HAND = 512;

/** Secrets that may also arrive as NAME_FILE, for mounted Kubernetes Secrets. */
export const SECRET_NAMES = [
  'WHATSAPP_VERIFY_TOKEN',
  'WHATSAPP_ACCESS_TOKEN',
  'WHATSAPP_APP_SECRET',
  'TWILIO_AUTH_TOKEN',
  'TWILIO_WEBHOOK_SHARED_KEY',
  'ADMIN_TOKEN',
  'DATABASE_URL',
  'AMQP_URL',
] as const;

/**
 * Whole numbers as digits only: coercion would read " " as 0 (PORT=" " becomes a random port)
 * and accept "0x10" or "1e3".
 */
const wholeNumber = z.preprocess(
  (value) => (typeof value === 'string' && /^\s*[-+]?\d+\s*$/.test(value) ? Number(value) : value),
  z.number({ message: 'must be a whole number (digits only)' }).int(),
);
const decimal = z.preprocess(
  (value) => (typeof value === 'string' && /^\s*[-+]?(\d+\.?\d*|\.\d+)\s*$/.test(value) ? Number(value) : value),
  z.number({ message: 'must be a number such as 0.5' }),
);
const int = (fallback: number, min = 0) => wholeNumber.pipe(z.number().min(min)).default(fallback);
/**
 * The longest wait a setting may ask for: 24 hours. Node runs a timer of more than 2^31 - 1 ms
 * (24.8 days) after 1 ms, so DB_STATEMENT_TIMEOUT_MS=2147483647, meant as "no limit", made
 * every commit's deadline pass at once and every webhook a 503. No timeout here needs a day.
 */
export const MAX_WAIT_MS = 24 * 60 * 60 * 1000;
const TOO_LONG = `must be at most ${MAX_WAIT_MS} ms (24 hours); longer waits overflow the process's timers`;
/** A wait in milliseconds, from min up to MAX_WAIT_MS. */
const milliseconds = (fallback: number, min: number) => wholeNumber.pipe(z.number().min(min).max(MAX_WAIT_MS, TOO_LONG)).default(fallback);
/** A wait in seconds, from min up to MAX_WAIT_MS. */
const seconds = (fallback: number, min: number) =>
  wholeNumber.pipe(z.number().min(min).max(MAX_WAIT_MS / 1000, `must be at most ${MAX_WAIT_MS / 1000} s (24 hours); longer waits overflow the process's timers`)).default(fallback);
const optionalInt = (min = 1) => wholeNumber.pipe(z.number().min(min)).optional();
const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
    .default(fallback ? 'true' : 'false')
    .transform((value) => value === 'true' || value === '1' || value === 'yes');
/** Comma-separated, or one per line as a mounted rotation file is naturally written. */
const secretList = z
  .string()
  .optional()
  .transform((value) => (value ?? '').split(/[,\r\n]/).map((entry) => entry.trim()).filter(Boolean));

/**
 * A URL of one of these schemes, with a host, whose user and password decode. zod's url()
 * accepts any scheme: "wagate:S3cret@db:5432/wagate" (the scheme left out) passed, and the
 * client then read the password as part of a path and printed it in its errors.
 */
function serviceUrl(schemes: string[], example: string) {
  return z.string().refine(
    (text) => {
      try {
        const url = new URL(text);
        decodeURIComponent(url.username);
        decodeURIComponent(url.password);
        // postgres:///db?host=/cloudsql/… names a Unix socket instead of a host.
        return schemes.includes(url.protocol) && (url.hostname !== '' || url.searchParams.has('host'));
      } catch {
        return false;
      }
    },
    { message: `must be a URL such as ${example} (scheme ${schemes.map((scheme) => scheme.slice(0, -1)).join(' or ')}, a host, and any %-escapes in the user or password well formed)` },
  );
}
/** The largest value a Postgres integer column holds: rate limits and retry tiers are stored so. */
const MAX_POSTGRES_INTEGER = 2_147_483_647;
const commaMilliseconds = z
  .string()
  .default('5000,30000,300000,1800000')
  .refine((value) => value.split(',').every((entry) => /^\s*\d+\s*$/.test(entry)), {
    message: 'must be a comma-separated list of positive whole numbers of milliseconds, digits only',
  })
  .transform((value) => value.split(',').map((entry) => Number(entry.trim())))
  .refine((delays) => delays.length > 0 && delays.every((d) => Number.isInteger(d) && d > 0), {
    message: 'must be a comma-separated list of positive integers (milliseconds)',
  })
  // Recorded as integers (retry_tier_delays): a longer tier failed every record, and a reshard
  // or requeue-stuck then knew none of the group's tiers.
  .refine((delays) => delays.every((d) => d <= MAX_POSTGRES_INTEGER), {
    message: `each delay must be at most ${MAX_POSTGRES_INTEGER} ms (about 24.8 days)`,
  });
/**
 * A rate limit's count, stored as a Postgres integer: 9999999999 meant as "no limit" failed
 * every batch of the source's messages, which were then kept as malformed and answered 200.
 */
const RATE_TOO_HIGH = `must be at most ${MAX_POSTGRES_INTEGER}`;
/** A rate limit's window: at most a year (its seconds are stored as an integer too). */
const WINDOW_TOO_LONG = 'must be at most 525600 minutes (a year)';
/** A retention: at most 100 years; a longer one reached before the earliest date Postgres stores, and every cleanup failed. */
const days = (fallback: number) => int(fallback, 1).pipe(z.number().max(36_500, 'must be at most 36500 days (100 years)'));

/** A DNS-1123 name, as Kubernetes requires for namespaces, Deployments and Leases. */
const kubeName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes name: lower-case letters, digits, dash and dot');

/** A DNS-1123 label, as Kubernetes requires for namespaces: no dots, at most 63 characters. */
const kubeNamespace = z
  .string()
  .max(63, 'must be a Kubernetes namespace: at most 63 characters')
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a Kubernetes namespace: lower-case letters, digits and dash');

/** An admin token weaker than this is refused at start: it guards every customer's statistics. */
export const MIN_ADMIN_TOKEN_BITS = 48;

/**
 * A cautious estimate of a token's randomness: its length times the Shannon entropy of its
 * characters. It cannot prove a token random, but it catches the obvious ones ("aaaa…",
 * "changemechangeme") that a person types and a generator never makes. Low on purpose:
 * 16 random hex characters estimate about 54 bits.
 */
export function estimatedTokenBits(token: string): number {
  const counts = new Map<string, number>();
  for (const char of token) counts.set(char, (counts.get(char) ?? 0) + 1);
  const length = [...token].length;
  let bitsPerChar = 0;
  for (const count of counts.values()) bitsPerChar -= (count / length) * Math.log2(count / length);
  return bitsPerChar * length;
}

/** An entry express's `trust proxy` (proxy-addr) takes: an address, a CIDR range, or one of its names. */
function isProxyEntry(entry: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true;
  const [address, prefix, ...rest] = entry.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/** A proxy entry whose range holds every address of a family (an entry isProxyEntry took). */
function coversEveryAddress(entry: string): boolean {
  const [address, prefix] = entry.split('/');
  if (prefix === undefined) return false;
  const bits = Number(prefix);
  return bits === 0 || (/^::ffff:/i.test(address!) && isIP(address!) === 6 && bits <= 96);
}

/** A comma-separated list of proxies, as proxy-addr takes them. */
function proxyList() {
  return z
    .string()
    .default('')
    .transform((text) => text.split(',').map((entry) => entry.trim()).filter(Boolean))
    .refine((entries) => entries.every(isProxyEntry), { message: 'must be a comma-separated list of addresses, CIDR ranges (10.0.0.0/8), loopback, linklocal or uniquelocal' })
    // A range of every address: /0, which proxy-addr refuses only once the ingest starts, or an
    // IPv4-mapped ::ffff:0:0/96, which it takes for every IPv4 client, so any client could name
    // itself in X-Forwarded-For and choose its own admin rate limit, or use up another's.
    .refine((entries) => !entries.some(coversEveryAddress), {
      message: 'holds a range of every address (/0, or ::ffff:0:0/96 for all of IPv4), which would trust every client (choosing the address it is rate-limited by, or its trace); list your proxies\' addresses or ranges',
    });
}

/** "abcdef…", "0123…", "9876…": more than half the steps between neighbours are ±1. */
function isMostlySequence(token: string): boolean {
  const codes = [...token].map((char) => char.codePointAt(0)!);
  const steps = codes.slice(1).filter((code, i) => Math.abs(code - codes[i]!) === 1).length;
  return steps * 2 > codes.length - 1;
}

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('production'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: serviceUrl(['postgres:', 'postgresql:'], 'postgres://user:password@host:5432/database').default('postgres://postgres@127.0.0.1:5432/postgres'),
  AMQP_URL: serviceUrl(['amqp:', 'amqps:'], 'amqp://user:password@host:5672').default('amqp://guest:guest@127.0.0.1:5672'),
  // Unset: every address of both families (Node listens on :: where IPv6 is available, which
  // takes IPv4 too, and on 0.0.0.0 where it is not). 0.0.0.0 was the default, and on an
  // IPv6-only or IPv6-first cluster the probes and the Service reached nothing.
  HOST: z.preprocess((value) => (value === '' ? undefined : value), z.string().optional()),
  PORT: int(3000, 0).pipe(z.number().max(65535)),
  METRICS_PORT: int(9464, 0).pipe(z.number().max(65535)),
  // Twilio signs the URL it posts to, which wagate builds as this base plus the request's
  // path and query: a query or fragment here would be in the middle of it, and every
  // signature would fail (the #rc=… fragment goes in TWILIO_URL_FRAGMENT).
  PUBLIC_BASE_URL: serviceUrl(['https:', 'http:'], 'https://shop.example.com')
    .refine((text) => !/[?#]/.test(text), { message: 'must be the scheme, host and any path prefix only, without ?query or #fragment (a #rc=… connection override goes in TWILIO_URL_FRAGMENT)' })
    .optional(),
  // Trimmed: a token written into a Secret with its file's newline could never match a header.
  ADMIN_TOKEN: z
    .string()
    .trim()
    .min(16, 'must be at least 16 characters')
    // Node reads a header's bytes as Latin-1: a token in UTF-8 or with a control character
    // would never match what a client sends, and every stats call would get 401.
    .refine((token) => !/[^\x20-\x7e]/.test(token), { message: 'holds a character outside printable ASCII, which no client can send as it is in an Authorization header; generate one, e.g. openssl rand -base64 32' })
    .refine((token) => estimatedTokenBits(token) >= MIN_ADMIN_TOKEN_BITS && !isMostlySequence(token), {
      message: 'is too guessable (repeats, a sequence or few distinct characters); generate one, e.g. openssl rand -base64 32',
    })
    .optional(),

  /** Stats requests per client address per minute, wrong tokens included. */
  ADMIN_RATE_LIMIT_PER_MINUTE: int(30, 1),
  /**
   * Proxies (addresses, CIDR ranges, or the names loopback, linklocal, uniquelocal)
   * whose X-Forwarded-For names the client: behind an ingress every client arrives from the
   * ingress's address, and would share one admin rate limit.
   */
  TRUSTED_PROXIES: proxyList(),
  /**
   * Proxies whose traceparent parents the ingest's server spans: a tracing ingress or mesh
   * that replaces a client's own. Not TRUSTED_PROXIES: an ingress that only forwards passes
   * a client's header on, and the header is read before the signature check.
   */
  TRACE_TRUSTED_PROXIES: proxyList(),

  // Trimmed, as the tokens below: a Secret made from a file keeps its newline, and Meta's
  // handshake would never match.
  WHATSAPP_VERIFY_TOKEN: z.string().trim().min(1).optional(),
  // Trimmed, as ADMIN_TOKEN: sent with a newline, the header is refused before a byte goes out,
  // and every reply would end unknown. Anything else a header cannot carry is refused at start.
  WHATSAPP_ACCESS_TOKEN: z.string().trim().min(1).refine((token) => !/[^\x21-\x7e]/.test(token), {
    message: 'holds a space or a character an Authorization header cannot carry; paste the token alone',
  }).optional(),
  WHATSAPP_APP_SECRET: secretList,
  TWILIO_AUTH_TOKEN: secretList,
  /** The secrets of the SharedKeys that Twilio's Webhook Rules sign with, instead of the auth token. */
  TWILIO_WEBHOOK_SHARED_KEY: secretList,
  TWILIO_ACCOUNT_SID: z.string().trim().optional(),
  TWILIO_SKIP_VALIDATION: bool(false),
  TWILIO_URL_FRAGMENT: z
    .string()
    .regex(/^#[^#\s]+$/, 'must be the fragment of the webhook URL configured in Twilio, starting with #, e.g. #rc=3&rp=ct,rt,5xx')
    .optional(),

  RATE_LIMIT_MAX_REQUESTS: int(100, 1).pipe(z.number().max(MAX_POSTGRES_INTEGER, RATE_TOO_HIGH)),
  RATE_LIMIT_WINDOW_MINUTES: int(60, 1).pipe(z.number().max(525_600, WINDOW_TOO_LONG)),
  RATE_LIMIT_WHATSAPP_MAX_REQUESTS: wholeNumber.pipe(z.number().min(1).max(MAX_POSTGRES_INTEGER, RATE_TOO_HIGH)).optional(),
  RATE_LIMIT_WHATSAPP_WINDOW_MINUTES: wholeNumber.pipe(z.number().min(1).max(525_600, WINDOW_TOO_LONG)).optional(),
  RATE_LIMIT_TWILIO_MAX_REQUESTS: wholeNumber.pipe(z.number().min(1).max(MAX_POSTGRES_INTEGER, RATE_TOO_HIGH)).optional(),
  RATE_LIMIT_TWILIO_WINDOW_MINUTES: wholeNumber.pipe(z.number().min(1).max(525_600, WINDOW_TOO_LONG)).optional(),
  REPLAY_WINDOW_SECONDS: int(DEFAULT_REPLAY_WINDOW_SECONDS, 60),
  RETENTION_DAYS: days(30),
  PERSONAL_DATA_RETENTION_DAYS: days(7),
  /** Shops keep orders (and their replies) longer than webhooks: a year by default. */
  ORDER_RETENTION_DAYS: days(365),
  /** "cancel" cancels the sender's newest order only while it is this young; 0 for any age. */
  // At most 100 years: a window reaching before 4714 BC made every cancel an error (timestamp out of range).
  ORDER_CANCEL_WINDOW_HOURS: int(24, 0).pipe(z.number().max(876_000, 'must be at most 876000 hours (100 years); 0 means any age')),
  MAX_BODY_BYTES: int(3 * 1024 * 1024, 1024),
  /**
   * The largest message the broker takes (RabbitMQ's max_message_size: 16 MiB from 4.0, 128 MiB
   * before). A larger one closes the publishing channel every time it is tried, so the relay
   * records such a message dead instead of publishing it.
   */
  BROKER_MAX_MESSAGE_BYTES: int(16 * 1024 * 1024, 4096),

  MAX_IN_FLIGHT: int(2000, 1),
  /** Bytes of webhook bodies buffered at once, before any signature is checked: 256 MiB. */
  MAX_IN_FLIGHT_BYTES: int(256 * 1024 * 1024, 1024),
  DB_POOL_MAX: int(10, 2),
  DB_CONNECT_TIMEOUT_SECONDS: seconds(3, 1),
  DB_STATEMENT_TIMEOUT_MS: milliseconds(5000, 100),
  /**
   * A statement unanswered this long means a dead connection, and /healthz fails (StallWatch).
   * Above a pooler's own wait for a server (PgBouncer's query_wait_timeout, RDS Proxy's
   * ConnectionBorrowTimeout: 120 s each by default), so that an outage behind one does not
   * restart every pod at once. Never below 4 × (connect + statement timeout).
   */
  DB_STALL_LIMIT_MS: milliseconds(150_000, 1000),
  LEDGER_BATCH_MAX: int(256, 1),
  /** Signed webhooks the ingest sends through its own request path before it reports ready (0: none). */
  WARM_UP_REHEARSAL_REQUESTS: int(2000, 0),
  /** How long a group commit waits for more requests at low rates (see the recorder). */
  LEDGER_LINGER_MS: int(0, 0).pipe(z.number().max(50)),

  QUEUE_PREFIX: z.string().regex(/^[a-zA-Z0-9._-]+$/, 'may hold only letters, digits, dot, dash and underscore').default('wagate'),
  QUEUE_DELIVERY_LIMIT: int(5, 2),
  WORK_SHARDS: int(32, 1).pipe(z.number().max(MAX_WORK_SHARDS)),
  RETRY_DELAYS_MS: commaMilliseconds,
  // The broker's prefetch count is 16 bits: a larger one made every shard's consumer fail to start, for good.
  WORKER_PREFETCH: int(32, 1).pipe(z.number().max(65_535, 'must be at most 65535 (the broker\'s prefetch count is 16 bits)')),
  WORKER_MESSAGES_IN_HAND: int(DEFAULT_WORKER_MESSAGES_IN_HAND, 0),
  WORKER_HEARTBEAT_MS: milliseconds(2000, 50),
  WORKER_LIVENESS_TIMEOUT_MS: milliseconds(15000, 200),
  WORKER_DRAIN_TIMEOUT_MS: milliseconds(20000, 100),
  WHATSAPP_GRAPH_API_URL: z.string().url().default('https://graph.facebook.com'),
  // Meta retires a Graph API version about two years after its release (v21.0 on 21 January
  // 2027, v25.0 on 29 July 2028): the default follows, and a shop may pin its own.
  WHATSAPP_GRAPH_API_VERSION: z.string().regex(/^v\d+\.\d+$/, 'must look like v25.0').default('v25.0'),
  TWILIO_API_URL: z.string().url().default('https://api.twilio.com'),
  REPLY_TIMEOUT_MS: milliseconds(10000, 100),
  MATCH_THRESHOLD: decimal.pipe(z.number().min(0.05).max(1)).default(0.5),
  MATCH_AMBIGUITY_MARGIN: decimal.pipe(z.number().min(0).max(1)).default(0.1),
  /** The reply language for a customer whose words never said which (orders/detect-language.ts lists the same four). */
  /** A worker whose broker login has been refused this long exits non-zero, so the crash shows (Kubernetes restarts it). */
  AUTH_FAILURE_EXIT_SECONDS: seconds(60, 1),
  REPLY_LANGUAGE: z.enum(['en', 'es', 'pt', 'de']).default('en'),
  /** A folder with en.json, es.json, pt.json and de.json: a shop's own reply texts. */
  REPLY_TEXTS_DIR: z.string().min(1).optional(),
  OUTBOX_LEASE_SECONDS: seconds(30, 5),
  OUTBOX_POLL_MS: milliseconds(1000, 50),
  PUBLISH_CONFIRM_TIMEOUT_MS: milliseconds(10000, 100),
  /**
   * How long committed messages gather before the owner publishes them together (see the outbox
   * relay). Unset: 10 ms, or 0 with ACK_AFTER=publish, where the 200 would wait for it.
   */
  PUBLISH_LINGER_MS: wholeNumber.pipe(z.number().min(0).max(100)).optional(),
  /**
   * When ingest answers 200: after the ledger commit (the outbox makes it as durable), or also
   * after the broker's confirm of the request's messages, waited for at most ACK_PUBLISH_TIMEOUT_MS.
   */
  ACK_AFTER: z.enum(['commit', 'publish']).default('commit'),
  ACK_PUBLISH_TIMEOUT_MS: milliseconds(1000, 1),

  HTTP_HEADERS_TIMEOUT_MS: milliseconds(10000, 100),
  HTTP_REQUEST_TIMEOUT_MS: milliseconds(30000, 100),
  WEBHOOK_BODY_TIMEOUT_MS: milliseconds(10000, 100),
  // Longer than the idle timeout of the proxy in front (60 s for nginx ingress and AWS's load
  // balancers), so the proxy, not wagate, closes an idle pooled connection: when the server closes
  // first, a request the proxy is just sending on it meets a reset, and the provider a 502.
  HTTP_KEEP_ALIVE_TIMEOUT_MS: milliseconds(65000, 100),
  SHUTDOWN_TIMEOUT_MS: milliseconds(25000, 100),

  AUTOSCALER_NAMESPACE: kubeNamespace.optional(),
  AUTOSCALER_DEPLOYMENT: kubeName.default('wagate-worker'),
  AUTOSCALER_TARGET_PER_REPLICA: int(100, 1),
  AUTOSCALER_MIN_REPLICAS: int(1, 1),
  AUTOSCALER_MAX_REPLICAS: optionalInt(1),
  AUTOSCALER_INTERVAL_SECONDS: seconds(10, 1),
  AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS: int(300, 0),
  AUTOSCALER_MANUAL_HOLD_SECONDS: int(1800, 0),
  AUTOSCALER_LEASE_NAME: kubeName.optional(),
  AUTOSCALER_LEASE_DURATION_SECONDS: seconds(15, 1),
  AUTOSCALER_RENEW_DEADLINE_SECONDS: seconds(10, 1),
  AUTOSCALER_RETRY_PERIOD_SECONDS: seconds(2, 1),
  AUTOSCALER_IDENTITY: z.string().min(1).max(253).optional(),
  POD_NAME: z.string().min(1).max(253).optional(),
  WAGATE_FAILPOINT: z.enum(FAILPOINTS).optional(),
  WAGATE_FAILPOINT_ACTION: z.enum(['hold', 'pause']).optional(),
});

export type Source = 'whatsapp' | 'twilio';
export interface RateLimit {
  maxRequests: number;
  windowSeconds: number;
}

export type Config = ReturnType<typeof loadConfig>;

/** Defined with the other error codes; exported here too, beside loadConfig, which throws it. */
export { ConfigError };

/** Resolves NAME_FILE into NAME for each secret, so mounted Secrets work like plain variables. */
function resolveSecretFiles(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const resolved = { ...env };
  for (const name of SECRET_NAMES) {
    const content = readSecretFile(name, env);
    if (content !== undefined) resolved[name] = content;
  }
  for (const [name, value] of Object.entries(resolved)) if (value === '') delete resolved[name];
  return resolved;
}

/**
 * The value of NAME read from the file NAME_FILE names, trimmed; undefined without NAME_FILE.
 * Refuses both set, an unreadable file and an empty one, naming the variable, never the content.
 */
export function readSecretFile(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const file = env[`${name}_FILE`];
  if (!file) return undefined;
  if (env[name]) throw new ConfigError(`${name} and ${name}_FILE are both set; set only one`);
  let content: string;
  try {
    content = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(`${name}_FILE: cannot read the file ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  // Empty would count as unset: DATABASE_URL would fall back to the local default, an app
  // secret would refuse every webhook. A mounted Secret whose key is empty is a mistake.
  if (content === '') throw new ConfigError(`${name}_FILE: the file is empty; put the value in it, or unset ${name}_FILE`);
  return content;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const parsed = envSchema.safeParse(resolveSecretFiles(env));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const problems = crossCheck(e);
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  const rateLimit = (max?: number, minutes?: number): RateLimit => ({
    maxRequests: max ?? e.RATE_LIMIT_MAX_REQUESTS,
    windowSeconds: (minutes ?? e.RATE_LIMIT_WINDOW_MINUTES) * 60,
  });
  return {
    ...e,
    rateLimits: {
      whatsapp: rateLimit(e.RATE_LIMIT_WHATSAPP_MAX_REQUESTS, e.RATE_LIMIT_WHATSAPP_WINDOW_MINUTES),
      twilio: rateLimit(e.RATE_LIMIT_TWILIO_MAX_REQUESTS, e.RATE_LIMIT_TWILIO_WINDOW_MINUTES),
    } satisfies Record<Source, RateLimit>,
    autoscaler: autoscalerSettings(e),
  };
}

type ParsedEnv = z.infer<typeof envSchema>;

/** The autoscaler's settings with their derived defaults; the namespace is resolved at start (ServiceAccount). */
function autoscalerSettings(e: ParsedEnv) {
  return {
    namespace: e.AUTOSCALER_NAMESPACE,
    deployment: e.AUTOSCALER_DEPLOYMENT,
    targetPerReplica: e.AUTOSCALER_TARGET_PER_REPLICA,
    minReplicas: e.AUTOSCALER_MIN_REPLICAS,
    maxReplicas: e.AUTOSCALER_MAX_REPLICAS ?? e.WORK_SHARDS,
    intervalMs: e.AUTOSCALER_INTERVAL_SECONDS * 1000,
    scaleDownStabilizationMs: e.AUTOSCALER_SCALE_DOWN_STABILIZATION_SECONDS * 1000,
    manualHoldMs: e.AUTOSCALER_MANUAL_HOLD_SECONDS * 1000,
    leaseName: e.AUTOSCALER_LEASE_NAME ?? `${e.AUTOSCALER_DEPLOYMENT}-autoscaler`,
    leaseDurationMs: e.AUTOSCALER_LEASE_DURATION_SECONDS * 1000,
    renewDeadlineMs: e.AUTOSCALER_RENEW_DEADLINE_SECONDS * 1000,
    retryPeriodMs: e.AUTOSCALER_RETRY_PERIOD_SECONDS * 1000,
    identity: e.AUTOSCALER_IDENTITY ?? e.POD_NAME ?? `${hostname()}-${process.pid}`,
  };
}

/** Leader election is safe only when a leader gives up before a standby may take over. */
function autoscalerProblems(e: ParsedEnv): string[] {
  const problems: string[] = [];
  const max = e.AUTOSCALER_MAX_REPLICAS ?? e.WORK_SHARDS;
  if (e.AUTOSCALER_MIN_REPLICAS > max) {
    problems.push('AUTOSCALER_MIN_REPLICAS: must not exceed AUTOSCALER_MAX_REPLICAS (which defaults to WORK_SHARDS)');
  }
  if (e.AUTOSCALER_RENEW_DEADLINE_SECONDS >= e.AUTOSCALER_LEASE_DURATION_SECONDS) {
    problems.push('AUTOSCALER_RENEW_DEADLINE_SECONDS: must be shorter than AUTOSCALER_LEASE_DURATION_SECONDS, or two leaders could act at once');
  }
  if (e.AUTOSCALER_RETRY_PERIOD_SECONDS >= e.AUTOSCALER_RENEW_DEADLINE_SECONDS) {
    problems.push('AUTOSCALER_RETRY_PERIOD_SECONDS: must be shorter than AUTOSCALER_RENEW_DEADLINE_SECONDS, or a leader loses the Lease between two tries');
  }
  return problems;
}

/** Settings that are each valid alone but unsafe together. */
function crossCheck(e: ParsedEnv): string[] {
  const problems: string[] = [];
  if (e.RETENTION_DAYS * 86400 < e.REPLAY_WINDOW_SECONDS + FUTURE_SKEW_SECONDS) {
    problems.push(
      'RETENTION_DAYS: must keep dedupe keys longer than REPLAY_WINDOW_SECONDS plus 5 minutes, or replayed messages would pass',
    );
  }
  if (e.ORDER_RETENTION_DAYS < e.RETENTION_DAYS) {
    problems.push(
      'ORDER_RETENTION_DAYS: must be at least RETENTION_DAYS; an order and its reply removed before their message would let a dead-letter replay of that message make a second order and reply',
    );
  }
  if (e.WAGATE_FAILPOINT && e.NODE_ENV !== 'test') {
    problems.push('WAGATE_FAILPOINT: stops the process on purpose, for crash tests; it is accepted only when NODE_ENV is test');
  }
  if (e.WAGATE_FAILPOINT_ACTION && e.NODE_ENV !== 'test') {
    problems.push('WAGATE_FAILPOINT_ACTION: says how a crash test\'s failpoint stops the process; it is accepted only when NODE_ENV is test');
  }
  if (e.TWILIO_SKIP_VALIDATION && e.NODE_ENV === 'production') {
    problems.push('TWILIO_SKIP_VALIDATION: is honoured only when NODE_ENV is development or test');
  }
  if (e.NODE_ENV === 'production' && e.TWILIO_AUTH_TOKEN.length + e.TWILIO_WEBHOOK_SHARED_KEY.length > 0 && !e.PUBLIC_BASE_URL) {
    problems.push('PUBLIC_BASE_URL: is required to check Twilio signatures (the URL Twilio calls)');
  }
  if (e.WORKER_LIVENESS_TIMEOUT_MS < 3 * e.WORKER_HEARTBEAT_MS) {
    problems.push('WORKER_LIVENESS_TIMEOUT_MS: must be at least 3 × WORKER_HEARTBEAT_MS, or one late heartbeat would move a worker\'s shards');
  }
  if (e.BROKER_MAX_MESSAGE_BYTES < e.MAX_BODY_BYTES) {
    problems.push('MAX_BODY_BYTES: must be at most BROKER_MAX_MESSAGE_BYTES, or a message the body carries could be too large for the broker');
  }
  if (e.MAX_IN_FLIGHT_BYTES < e.MAX_BODY_BYTES) {
    problems.push('MAX_IN_FLIGHT_BYTES: must be at least MAX_BODY_BYTES, or the largest body could never be read');
  }
  if (e.RETRY_DELAYS_MS.some((delay, index) => index > 0 && delay <= e.RETRY_DELAYS_MS[index - 1]!)) {
    problems.push('RETRY_DELAYS_MS: the tiers must ascend (each delay longer than the one before)');
  }
  // By a second at least: an ingest publishes its own rows only while their lease leaves time
  // past the confirm deadline for a renewal to commit (outbox-relay.ts); with less, every row
  // would wait for the sweep.
  if (e.OUTBOX_LEASE_SECONDS * 1000 - e.PUBLISH_CONFIRM_TIMEOUT_MS < 1000) {
    problems.push(
      'OUTBOX_LEASE_SECONDS: must exceed PUBLISH_CONFIRM_TIMEOUT_MS by 1 s or more, or another relay could publish a row whose confirm is still awaited, or every row wait for the sweep',
    );
  }
  if (e.METRICS_PORT !== 0 && e.METRICS_PORT === e.PORT) {
    problems.push('METRICS_PORT: must differ from PORT so that metrics stay off the public port');
  }
  problems.push(...autoscalerProblems(e));
  return problems;
}

/**
 * What only the worker needs: in production, a source whose webhooks are configured must also
 * have its reply credentials, or the worker would create every order and then dead-letter
 * every reply. Meta counts as configured with WHATSAPP_APP_SECRET, Twilio with TWILIO_AUTH_TOKEN
 * or TWILIO_WEBHOOK_SHARED_KEY (the worker sends with the auth token either way).
 */
export function checkWorkerConfig(config: Config): void {
  if (config.NODE_ENV !== 'production') return;
  const problems: string[] = [];
  if (config.WHATSAPP_APP_SECRET.length > 0 && !config.WHATSAPP_ACCESS_TOKEN) {
    problems.push('WHATSAPP_ACCESS_TOKEN: is required by the worker when Meta is configured (WHATSAPP_APP_SECRET is set), to send replies');
  }
  if (config.TWILIO_AUTH_TOKEN.length > 0 && !config.TWILIO_ACCOUNT_SID) {
    problems.push('TWILIO_ACCOUNT_SID: is required by the worker when Twilio is configured (TWILIO_AUTH_TOKEN is set), to send replies');
  }
  if (config.TWILIO_WEBHOOK_SHARED_KEY.length > 0 && config.TWILIO_AUTH_TOKEN.length === 0) {
    problems.push('TWILIO_AUTH_TOKEN: is required by the worker when Twilio is configured (TWILIO_WEBHOOK_SHARED_KEY is set), to send replies; a shared key only signs webhooks');
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
}

/** The header, request and keep-alive timeouts that every HTTP server of a process sets. */
export function httpTimeouts(config: Config): { headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number } {
  return {
    headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
  };
}
