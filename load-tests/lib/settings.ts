/**
 * Run settings from the environment: k6's __ENV or Node's process.env, passed in as a plain
 * record so this file runs in both. A bad value stops the run with the variable's name.
 */
export type Env = Record<string, string | undefined>;

export interface Settings {
  /** Where requests go, e.g. https://staging.shop.example.com */
  baseUrl: string;
  /** The scheme and host Twilio calls (the gateway's PUBLIC_BASE_URL); Twilio signatures cover it. */
  publicBaseUrl: string;
  /** Empty when the scenario signs nothing of Meta's (ScenarioDefaults.signs) and none was given. */
  metaSecret: string;
  /** Empty when the scenario signs nothing of Twilio's and none was given. */
  twilioToken: string;
  /** For the stats endpoint: the backlog scenario watches the drain through it. */
  adminToken: string | undefined;
  /** Iterations per second (the peak rate of a ramp). */
  rate: number;
  durationSeconds: number;
  senders: number;
  /** The target for every webhook's answer (http_req_duration{webhook:yes} p99). */
  ackP99Ms: number;
  /** wagate's SLO (p99 < 20 ms at 500 req/s on 2 cores), for requests tagged slo:ack. */
  sloP99Ms: number;
  preAllocatedVUs: number;
  maxVUs: number;
  /** Where the JSON summary is written. */
  summaryPath: string;
  /** Fixed by RUN_ID, or drawn once per run. */
  runId: string | undefined;
  env: Env;
}

/** Whose signatures a scenario makes: only their secrets are required. */
export type Signer = 'meta' | 'twilio';

export interface ScenarioDefaults {
  rate: number;
  duration: string;
  /** Both when omitted. */
  signs?: readonly Signer[];
}

/** Each sender stays under this many messages per run, so the gateway's default limit (100 an hour) is not what gets measured. */
const MESSAGES_PER_SENDER = 50;
const MIN_SENDERS = 1000;
export const DEFAULT_ACK_P99_MS = 300;
export const DEFAULT_SLO_P99_MS = 20;

export function readSettings(env: Env, scenario: string, defaults: ScenarioDefaults): Settings {
  const baseUrl = urlFrom(env, 'BASE_URL', 'http://127.0.0.1:3000');
  const signs = defaults.signs ?? ['meta', 'twilio'];
  // Whatever k6 would refuse at start is refused here too, so that `npm run load` never passes a run `k6 run` cannot start.
  const rate = integerFrom(env, 'RATE', defaults.rate);
  const durationSeconds = parseDuration(env.DURATION ?? defaults.duration, 'DURATION');
  if (durationSeconds < 1) throw new Error('DURATION must be at least 1s, the shortest k6 runs an arrival-rate scenario for');
  const expectedMessages = rate * durationSeconds;
  // k6 starts VUs beyond these only as needed, and starting one (running the script's init) takes long enough on a
  // busy machine to drop iterations, so a fifth of the rate starts up front; the ceiling absorbs a stalling server.
  const maxVUsSet = env.MAX_VUS !== undefined && env.MAX_VUS !== '' ? integerFrom(env, 'MAX_VUS', 1) : undefined;
  const preAllocatedVUs = integerFrom(env, 'PRE_ALLOCATED_VUS', Math.min(Math.max(20, Math.ceil(rate / 5)), maxVUsSet ?? Infinity));
  if (maxVUsSet !== undefined && maxVUsSet < preAllocatedVUs) throw new Error('MAX_VUS must be at least PRE_ALLOCATED_VUS (k6 refuses fewer)');
  const runId = env.RUN_ID;
  if (runId !== undefined && !/^[0-9a-f]{8}$/.test(runId)) throw new Error('RUN_ID must be 8 lower-case hex digits');
  return {
    baseUrl,
    publicBaseUrl: urlFrom(env, 'PUBLIC_BASE_URL', baseUrl),
    metaSecret: firstSecret(env, 'WHATSAPP_APP_SECRET', signs.includes('meta')),
    twilioToken: firstSecret(env, 'TWILIO_AUTH_TOKEN', signs.includes('twilio')),
    adminToken: env.ADMIN_TOKEN || undefined,
    rate,
    durationSeconds,
    senders: integerFrom(env, 'SENDERS', Math.max(MIN_SENDERS, Math.ceil(expectedMessages / MESSAGES_PER_SENDER))),
    ackP99Ms: numberFrom(env, 'ACK_P99_MS', DEFAULT_ACK_P99_MS),
    sloP99Ms: numberFrom(env, 'SLO_P99_MS', DEFAULT_SLO_P99_MS),
    preAllocatedVUs,
    maxVUs: maxVUsSet ?? Math.max(preAllocatedVUs, rate),
    summaryPath: env.SUMMARY_PATH || `load-summary-${scenario}.json`,
    runId,
    env,
  };
}

/**
 * Hours, minutes, seconds and milliseconds as k6 writes them ("90s", "5m", "1h30m", "250ms"), or a
 * plain number, which is seconds here (k6 would read milliseconds); days ("1d") and fractional
 * minutes ("1.5m") are refused with a message.
 */
export function parseDuration(text: string, name: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return positive(Number(text), name);
  const match = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/.exec(text);
  if (!match || text === '') throw new Error(`${name} must be a duration such as 30s, 5m or 1h30m`);
  const [, hours, minutes, seconds, millis] = match;
  return positive(Number(hours ?? 0) * 3600 + Number(minutes ?? 0) * 60 + Number(seconds ?? 0) + Number(millis ?? 0) / 1000, name);
}

export function numberFrom(env: Env, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

export function integerFrom(env: Env, name: string, fallback: number): number {
  const value = numberFrom(env, name, fallback);
  if (!Number.isInteger(value)) throw new Error(`${name} must be a whole number`);
  return value;
}

/** A share between 0 and 1, e.g. META_SHARE=0.7. */
export function shareFrom(env: Env, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  // 0 and 1 are shares too: an all-Twilio mix, a flood run without its flooder.
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new Error(`${name} must be between 0 and 1`);
  return value;
}

function urlFrom(env: Env, name: string, fallback: string): string {
  const text = (env[name] || fallback).replace(/\/+$/, '');
  if (!/^https?:\/\/\S+$/.test(text)) throw new Error(`${name} must be a scheme and host, such as https://shop.example.com`);
  return text;
}

/** The gateway accepts a comma-separated list during a rotation; the first entry is the current secret. */
function firstSecret(env: Env, name: string, required: boolean): string {
  const secret = (env[name] ?? '').split(',')[0]!.trim();
  if (!secret && required) throw new Error(`${name} is required: the load must be signed with the gateway's secret`);
  return secret;
}

function positive(value: number, name: string): number {
  if (!(value > 0)) throw new Error(`${name} must be longer than zero`);
  return value;
}
