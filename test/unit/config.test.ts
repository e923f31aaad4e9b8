import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkWorkerConfig, ConfigError, loadConfig } from '../../src/config';

const expectConfigError = (env: Record<string, string>, pattern: RegExp) => {
  expect(() => loadConfig(env)).toThrow(ConfigError);
  expect(() => loadConfig(env)).toThrow(pattern);
};

describe('configuration', () => {
  it('defaults to local Postgres and RabbitMQ and the documented limits', () => {
    const config = loadConfig({});
    expect(config.DATABASE_URL).toBe('postgres://postgres@127.0.0.1:5432/postgres');
    expect(config.AMQP_URL).toBe('amqp://guest:guest@127.0.0.1:5672');
    expect(config.PORT).toBe(3000);
    expect(config.METRICS_PORT).toBe(9464);
    expect(config.REPLAY_WINDOW_SECONDS).toBe(691200);
    expect(config.MAX_BODY_BYTES).toBe(3 * 1024 * 1024);
    expect(config.rateLimits.whatsapp).toEqual({ maxRequests: 100, windowSeconds: 3600 });
    expect(config.RETRY_DELAYS_MS).toEqual([5000, 30000, 300000, 1800000]);
  });

  it('leaves room for 32 workers, a hand-over within 15 s and a 20 s drain by default', () => {
    const config = loadConfig({});
    expect(config.WORK_SHARDS).toBe(32);
    expect(config.WORKER_HEARTBEAT_MS).toBe(2000);
    expect(config.WORKER_LIVENESS_TIMEOUT_MS).toBe(15000);
    expect(config.WORKER_DRAIN_TIMEOUT_MS).toBe(20000);
  });

  it('refuses a liveness timeout that one late heartbeat would exceed', () => {
    expectConfigError({ WORKER_HEARTBEAT_MS: '2000', WORKER_LIVENESS_TIMEOUT_MS: '5000' }, /WORKER_LIVENESS_TIMEOUT_MS: must be at least 3 × WORKER_HEARTBEAT_MS/);
    expectConfigError({ WORK_SHARDS: '257' }, /WORK_SHARDS/);
  });

  it('applies per-source rate limits over the shared ones', () => {
    const config = loadConfig({ RATE_LIMIT_MAX_REQUESTS: '50', RATE_LIMIT_TWILIO_MAX_REQUESTS: '7', RATE_LIMIT_TWILIO_WINDOW_MINUTES: '5' });
    expect(config.rateLimits).toEqual({
      whatsapp: { maxRequests: 50, windowSeconds: 3600 },
      twilio: { maxRequests: 7, windowSeconds: 300 },
    });
  });

  it('splits rotated secrets on commas, current one first', () => {
    expect(loadConfig({ WHATSAPP_APP_SECRET: ' new-secret , old-secret ' }).WHATSAPP_APP_SECRET).toEqual(['new-secret', 'old-secret']);
  });

  it('names the variable and never echoes its value', () => {
    const secretLooking = 'not-a-number-s3cr3t';
    try {
      loadConfig({ PORT: secretLooking });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect((error as Error).message).toMatch(/PORT/);
      expect((error as Error).message).not.toContain(secretLooking);
    }
    expectConfigError({ ADMIN_TOKEN: 'short' }, /ADMIN_TOKEN: must be at least 16 characters/);
    expectConfigError({ ADMIN_TOKEN: 'Pässwörter-7Gk2rQ9xLm4vT8zB' }, /ADMIN_TOKEN: holds a character outside printable ASCII/);
    expectConfigError({ ADMIN_TOKEN: 'kQ7m2Zr9\u0007xLp4vT8zBw3' }, /ADMIN_TOKEN: holds a character outside printable ASCII/);
    expectConfigError({ TRUSTED_PROXIES: '10.0.0.0/8, ingress.local' }, /TRUSTED_PROXIES: must be a comma-separated list of addresses, CIDR ranges/);
    expectConfigError({ TRUSTED_PROXIES: '10.0.0.0/33' }, /TRUSTED_PROXIES: must be/);
    expectConfigError({ TRUSTED_PROXIES: '10.0.0.0/8,0.0.0.0/0' }, /TRUSTED_PROXIES: holds a range of every address/);
    expectConfigError({ TRUSTED_PROXIES: '::/00' }, /TRUSTED_PROXIES: holds a range of every address/);
    expectConfigError({ TRUSTED_PROXIES: '::ffff:0:0/96' }, /TRUSTED_PROXIES: holds a range of every address/);
    expectConfigError({ TRACE_TRUSTED_PROXIES: '0.0.0.0/0' }, /TRACE_TRUSTED_PROXIES: holds a range of every address/);
    expectConfigError({ TRACE_TRUSTED_PROXIES: 'ingress.example.com' }, /TRACE_TRUSTED_PROXIES: must be a comma-separated list/);
    expect(loadConfig({ TRUSTED_PROXIES: '::ffff:10.0.0.0/104' }).TRUSTED_PROXIES).toEqual(['::ffff:10.0.0.0/104']);
    expect(loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8,192.168.0.0/16' }).TRUSTED_PROXIES).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(loadConfig({ TRUSTED_PROXIES: ' 10.0.0.0/8,fd00::/8 ,loopback' }).TRUSTED_PROXIES).toEqual(['10.0.0.0/8', 'fd00::/8', 'loopback']);
    expectConfigError({ RETRY_DELAYS_MS: '5000,soon' }, /RETRY_DELAYS_MS/);
  });

  it('refuses a retention that would forget dedupe keys inside the replay window', () => {
    expectConfigError({ RETENTION_DAYS: '8' }, /RETENTION_DAYS: must keep dedupe keys longer than REPLAY_WINDOW_SECONDS/);
    expect(loadConfig({ RETENTION_DAYS: '9' }).RETENTION_DAYS).toBe(9);
    // Orders and replies outlive their messages, or a replayed dead letter could order twice.
    expectConfigError({ RETENTION_DAYS: '30', ORDER_RETENTION_DAYS: '7' }, /ORDER_RETENTION_DAYS: must be at least RETENTION_DAYS/);
    expect(loadConfig({ RETENTION_DAYS: '30', ORDER_RETENTION_DAYS: '30' }).ORDER_RETENTION_DAYS).toBe(30);
  });

  it('honours TWILIO_SKIP_VALIDATION only in development and test', () => {
    expect(loadConfig({ NODE_ENV: 'development', TWILIO_SKIP_VALIDATION: 'true' }).TWILIO_SKIP_VALIDATION).toBe(true);
    expectConfigError({ NODE_ENV: 'production', TWILIO_SKIP_VALIDATION: 'true' }, /TWILIO_SKIP_VALIDATION/);
  });

  it('accepts WAGATE_FAILPOINT only in test, and only a known point', () => {
    expect(loadConfig({ NODE_ENV: 'test', WAGATE_FAILPOINT: 'worker.after-claim' }).WAGATE_FAILPOINT).toBe('worker.after-claim');
    expectConfigError({ NODE_ENV: 'production', WAGATE_FAILPOINT: 'worker.after-claim' }, /WAGATE_FAILPOINT: .*only when NODE_ENV is test/);
    expectConfigError({ NODE_ENV: 'development', WAGATE_FAILPOINT: 'worker.after-claim' }, /WAGATE_FAILPOINT/);
    expectConfigError({ NODE_ENV: 'test', WAGATE_FAILPOINT: 'worker.nowhere' }, /WAGATE_FAILPOINT/);
  });

  it('takes TWILIO_URL_FRAGMENT only as a fragment', () => {
    expect(loadConfig({ TWILIO_URL_FRAGMENT: '#rc=3&rp=ct,rt,5xx' }).TWILIO_URL_FRAGMENT).toBe('#rc=3&rp=ct,rt,5xx');
    expectConfigError({ TWILIO_URL_FRAGMENT: 'rc=3' }, /TWILIO_URL_FRAGMENT: must be the fragment/);
  });

  it('requires PUBLIC_BASE_URL in production when Twilio is configured', () => {
    expectConfigError({ NODE_ENV: 'production', TWILIO_AUTH_TOKEN: 'tok' }, /PUBLIC_BASE_URL/);
    expectConfigError({ NODE_ENV: 'production', TWILIO_WEBHOOK_SHARED_KEY: 'key' }, /PUBLIC_BASE_URL: is required to check Twilio signatures/);
  });

  it('reads secrets from NAME_FILE and refuses both forms at once', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wagate-config-'));
    const file = path.join(dir, 'secret');
    writeFileSync(file, 'from-a-mounted-secret\n');
    expect(loadConfig({ WHATSAPP_APP_SECRET_FILE: file }).WHATSAPP_APP_SECRET).toEqual(['from-a-mounted-secret']);
    expectConfigError({ WHATSAPP_APP_SECRET_FILE: file, WHATSAPP_APP_SECRET: 'x' }, /WHATSAPP_APP_SECRET and WHATSAPP_APP_SECRET_FILE are both set/);
    expectConfigError({ ADMIN_TOKEN_FILE: path.join(dir, 'missing') }, /ADMIN_TOKEN_FILE: cannot read the file .*missing \(ENOENT\)/);
  });

  it('refuses an empty secret file rather than falling back to the default, and reads one secret per line', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wagate-config-'));
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, ' \n');
    expectConfigError({ DATABASE_URL_FILE: empty }, /DATABASE_URL_FILE: the file is empty/);
    const rotation = path.join(dir, 'rotation');
    writeFileSync(rotation, 'new-secret\r\nold-secret\n');
    expect(loadConfig({ WHATSAPP_APP_SECRET_FILE: rotation }).WHATSAPP_APP_SECRET).toEqual(['new-secret', 'old-secret']);
  });

  it('refuses a database, broker or public URL without its scheme or host, never echoing the password', () => {
    const password = 'S3cretPass';
    const refusals: Array<[Record<string, string>, RegExp]> = [
      [{ DATABASE_URL: `wagate:${password}@db:5432/wagate` }, /DATABASE_URL: must be a URL such as postgres:\/\/user:password@host:5432\/database/],
      [{ DATABASE_URL: `mysql://wagate:${password}@db/wagate` }, /DATABASE_URL: must be a URL/],
      [{ DATABASE_URL: `postgres://wagate:${password}%zz@db/wagate` }, /DATABASE_URL: .*%-escapes in the user or password well formed/],
      [{ AMQP_URL: `wagate:${password}@rabbitmq:5672` }, /AMQP_URL: must be a URL such as amqp:\/\/user:password@host:5672/],
      [{ PUBLIC_BASE_URL: 'shop.example.com:443' }, /PUBLIC_BASE_URL: must be a URL such as https:\/\/shop.example.com/],
      // Twilio's whole configured URL pasted in: every signature would be checked against a wrong URL.
      [{ PUBLIC_BASE_URL: 'https://shop.example.com/webhooks/twilio#rc=3' }, /PUBLIC_BASE_URL: must be the scheme, host and any path prefix only, without \?query or #fragment/],
      [{ PUBLIC_BASE_URL: 'https://shop.example.com/?x=1' }, /PUBLIC_BASE_URL: must be the scheme, host and any path prefix only/],
    ];
    for (const [env, message] of refusals) {
      expect(() => loadConfig(env)).toThrow(message);
      expect(() => loadConfig(env)).not.toThrow(password);
    }
    expect(loadConfig({ DATABASE_URL: 'postgresql://u:p%40ss@db/wagate', AMQP_URL: 'amqps://u:p@mq' }).AMQP_URL).toBe('amqps://u:p@mq');
    expect(loadConfig({ DATABASE_URL: 'postgres:///wagate?host=/cloudsql/shop:europe-west1:db&user=u' }).DATABASE_URL).toContain('/cloudsql/');
  });

  it('reads numbers as digits only', () => {
    expectConfigError({ PORT: ' ' }, /PORT: must be a whole number/);
    expectConfigError({ DB_POOL_MAX: '0x10' }, /DB_POOL_MAX: must be a whole number/);
    expectConfigError({ MAX_BODY_BYTES: '1e6' }, /MAX_BODY_BYTES: must be a whole number/);
    expectConfigError({ MATCH_AMBIGUITY_MARGIN: ' ' }, /MATCH_AMBIGUITY_MARGIN: must be a number/);
    expectConfigError({ PUBLISH_LINGER_MS: '-1' }, /PUBLISH_LINGER_MS/);
    const config = loadConfig({ PORT: ' +8080 ', MATCH_THRESHOLD: '.4', PUBLISH_LINGER_MS: '0' });
    expect([config.PORT, config.MATCH_THRESHOLD, config.PUBLISH_LINGER_MS]).toEqual([8080, 0.4, 0]);
  });

  it('refuses a wait longer than a day, which the process\'s timers would run at once', () => {
    // 2^31 - 1, Postgres's own largest statement_timeout, is what "no limit" looks like.
    expectConfigError({ DB_STATEMENT_TIMEOUT_MS: '2147483647' }, /DB_STATEMENT_TIMEOUT_MS: must be at most 86400000 ms \(24 hours\)/);
    expectConfigError({ REPLY_TIMEOUT_MS: '86400001' }, /REPLY_TIMEOUT_MS: must be at most/);
    expectConfigError({ AUTOSCALER_INTERVAL_SECONDS: '86401' }, /AUTOSCALER_INTERVAL_SECONDS: must be at most 86400 s/);
    expect(loadConfig({ REPLY_TIMEOUT_MS: '86400000', SHUTDOWN_TIMEOUT_MS: '86400000' }).REPLY_TIMEOUT_MS).toBe(86_400_000);
  });

  it('trims ADMIN_TOKEN, which a Secret made from a file can carry with its newline', () => {
    const token = 'Zq3v9Kx2Lm8Pw4Rt7Yb1';
    expect(loadConfig({ ADMIN_TOKEN: `${token}\n` }).ADMIN_TOKEN).toBe(token);
  });

  it('trims WHATSAPP_VERIFY_TOKEN, which Meta\'s handshake would never match with a Secret file\'s newline', () => {
    expect(loadConfig({ WHATSAPP_VERIFY_TOKEN: 'shop-verify\n' }).WHATSAPP_VERIFY_TOKEN).toBe('shop-verify');
    expectConfigError({ WHATSAPP_VERIFY_TOKEN: ' \n' }, /WHATSAPP_VERIFY_TOKEN/);
  });

  it('trims WHATSAPP_ACCESS_TOKEN and TWILIO_ACCOUNT_SID, and refuses a token an Authorization header cannot carry', () => {
    const config = loadConfig({ WHATSAPP_ACCESS_TOKEN: 'EAAG-token\n', TWILIO_ACCOUNT_SID: ' AC0123456789abcdef0123456789abcdef\n' });
    expect([config.WHATSAPP_ACCESS_TOKEN, config.TWILIO_ACCOUNT_SID]).toEqual(['EAAG-token', 'AC0123456789abcdef0123456789abcdef']);
    expectConfigError({ WHATSAPP_ACCESS_TOKEN: 'EAAG token' }, /WHATSAPP_ACCESS_TOKEN: holds a space or a character an Authorization header cannot carry/);
    expectConfigError({ WHATSAPP_ACCESS_TOKEN: 'EAAG\u0007token' }, /WHATSAPP_ACCESS_TOKEN: holds a space/);
  });

  it('refuses a cancel window so long that Postgres could not compute its start', () => {
    expectConfigError({ ORDER_CANCEL_WINDOW_HOURS: '60000000' }, /ORDER_CANCEL_WINDOW_HOURS: must be at most 876000 hours/);
    // Stored as Postgres integers, or read as 16 bits by the broker, or reaching before the earliest date Postgres stores.
    for (const [name, over, most] of [
      ['RATE_LIMIT_MAX_REQUESTS', '2147483648', '2147483647'],
      ['RATE_LIMIT_WHATSAPP_MAX_REQUESTS', '9999999999', '2147483647'],
      ['RATE_LIMIT_TWILIO_MAX_REQUESTS', '2147483648', '2147483647'],
      ['RATE_LIMIT_WINDOW_MINUTES', '525601', '525600'],
      ['RATE_LIMIT_TWILIO_WINDOW_MINUTES', '40000000', '525600'],
      ['WORKER_PREFETCH', '65536', '65535'],
      ['RETENTION_DAYS', '9999999', '36500'],
      ['PERSONAL_DATA_RETENTION_DAYS', '36501', '36500'],
      ['ORDER_RETENTION_DAYS', '9999999', '36500'],
    ] as const) {
      expectConfigError({ [name]: over }, new RegExp(`${name}: must be at most`));
      expect(() => loadConfig({ [name]: most, ...(name.endsWith('RETENTION_DAYS') ? { ORDER_RETENTION_DAYS: '36500', RETENTION_DAYS: '36500', PERSONAL_DATA_RETENTION_DAYS: '36500' } : {}) })).not.toThrow();
    }
    expectConfigError({ RETRY_DELAYS_MS: '5000,2592000000' }, /RETRY_DELAYS_MS: each delay must be at most 2147483647 ms/);
    for (const written of ['1e3,30000', '0x10', '5000, ,30000']) expectConfigError({ RETRY_DELAYS_MS: written }, /RETRY_DELAYS_MS: must be a comma-separated list of positive whole numbers of milliseconds, digits only/);
    expect(loadConfig({ RETRY_DELAYS_MS: ' 5000 , 2147483647' }).RETRY_DELAYS_MS).toEqual([5000, 2147483647]);
    expect(loadConfig({ ORDER_CANCEL_WINDOW_HOURS: '0' }).ORDER_CANCEL_WINDOW_HOURS).toBe(0);
  });

  it('keeps metrics off the public port', () => {
    expectConfigError({ PORT: '8080', METRICS_PORT: '8080' }, /METRICS_PORT/);
  });

  it('refuses retry tiers that do not ascend', () => {
    expectConfigError({ RETRY_DELAYS_MS: '5000,30000,30000' }, /RETRY_DELAYS_MS: the tiers must ascend/);
    expectConfigError({ RETRY_DELAYS_MS: '30000,5000' }, /RETRY_DELAYS_MS: the tiers must ascend/);
    expect(loadConfig({ RETRY_DELAYS_MS: '100,200' }).RETRY_DELAYS_MS).toEqual([100, 200]);
  });

  it('refuses an outbox lease no longer than the publish-confirm timeout', () => {
    expectConfigError({ OUTBOX_LEASE_SECONDS: '10', PUBLISH_CONFIRM_TIMEOUT_MS: '10000' }, /OUTBOX_LEASE_SECONDS: must exceed PUBLISH_CONFIRM_TIMEOUT_MS/);
    expectConfigError({ OUTBOX_LEASE_SECONDS: '11', PUBLISH_CONFIRM_TIMEOUT_MS: '10500' }, /OUTBOX_LEASE_SECONDS: must exceed PUBLISH_CONFIRM_TIMEOUT_MS by 1 s or more/);
    expect(loadConfig({ OUTBOX_LEASE_SECONDS: '11', PUBLISH_CONFIRM_TIMEOUT_MS: '10000' }).OUTBOX_LEASE_SECONDS).toBe(11);
  });

  it('bounds the bytes in flight at 256 MiB by default, and never below one body', () => {
    expect(loadConfig({}).MAX_IN_FLIGHT_BYTES).toBe(256 * 1024 * 1024);
    expectConfigError({ MAX_IN_FLIGHT_BYTES: '2048', MAX_BODY_BYTES: '4096' }, /MAX_IN_FLIGHT_BYTES: must be at least MAX_BODY_BYTES/);
    expect(loadConfig({}).BROKER_MAX_MESSAGE_BYTES).toBe(16 * 1024 * 1024);
    expectConfigError({ MAX_BODY_BYTES: String(32 * 1024 * 1024) }, /MAX_BODY_BYTES: must be at most BROKER_MAX_MESSAGE_BYTES/);
    expect(loadConfig({ MAX_BODY_BYTES: String(32 * 1024 * 1024), BROKER_MAX_MESSAGE_BYTES: String(128 * 1024 * 1024) }).MAX_BODY_BYTES).toBe(32 * 1024 * 1024);
  });

  it('refuses a production worker without the reply credentials of a configured source', () => {
    const production = { NODE_ENV: 'production', PUBLIC_BASE_URL: 'https://shop.example.com' };
    const metaOnly = loadConfig({ ...production, WHATSAPP_APP_SECRET: 's' });
    expect(() => checkWorkerConfig(metaOnly)).toThrow(/WHATSAPP_ACCESS_TOKEN: is required by the worker/);
    const twilioOnly = loadConfig({ ...production, TWILIO_AUTH_TOKEN: 't' });
    expect(() => checkWorkerConfig(twilioOnly)).toThrow(/TWILIO_ACCOUNT_SID: is required by the worker/);
    expect(() => checkWorkerConfig(loadConfig({ ...production, TWILIO_AUTH_TOKEN: 't', TWILIO_ACCOUNT_SID: 'AC1' }))).not.toThrow();
    const sharedKeyOnly = loadConfig({ ...production, TWILIO_WEBHOOK_SHARED_KEY: 'k', TWILIO_ACCOUNT_SID: 'AC1' });
    expect(() => checkWorkerConfig(sharedKeyOnly)).toThrow(/TWILIO_AUTH_TOKEN: is required by the worker when Twilio is configured \(TWILIO_WEBHOOK_SHARED_KEY is set\)/);
    expect(() => checkWorkerConfig(loadConfig({ NODE_ENV: 'test', WHATSAPP_APP_SECRET: 's' }))).not.toThrow();
  });
});
