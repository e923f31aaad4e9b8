import { STATS_PATH } from '../../src/http/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { createInProcessIngest, type InProcessIngest } from '../support/in-process';
import { ADMIN_TOKEN } from '../support/ingest';

/** The admin endpoint's own rate limit, per client address, before the token is checked. */
const LIMIT = 3;

let db: TestDatabase;
let ingest: InProcessIngest;

beforeAll(async () => {
  db = await createTestDatabase();
  ingest = createInProcessIngest(db.sql, db.url, { ADMIN_RATE_LIMIT_PER_MINUTE: String(LIMIT) });
});

afterAll(async () => {
  await ingest.drain();
  await db.drop();
});

const stats = (remoteAddress: string, token = ADMIN_TOKEN) =>
  ingest.request({ method: 'GET', url: STATS_PATH, remoteAddress, headers: { authorization: `Bearer ${token}` } });

describe('the admin endpoint', () => {
  it('answers 429 with Retry-After beyond its limit, wrong tokens counting too, and only for that address', async () => {
    expect((await stats('192.0.2.1', 'wrong-token-guess-0000')).statusCode).toBe(401);
    for (let i = 1; i < LIMIT; i += 1) expect((await stats('192.0.2.1')).statusCode).toBe(200);
    const limited = await stats('192.0.2.1');
    expect(limited.statusCode).toBe(429);
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.json()).toEqual({ error: `too many admin requests; retry in ${retryAfter} s` });
    // A guesser gets no answer about the token once limited.
    expect((await stats('192.0.2.1', 'another-wrong-guess-1111')).statusCode).toBe(429);
    // Another client is not held back by the first.
    expect((await stats('192.0.2.2')).statusCode).toBe(200);
  });

  it('says that stats are off on a gateway without ADMIN_TOKEN, rather than that the token is wrong', async () => {
    const off = createInProcessIngest(db.sql, db.url, { ADMIN_TOKEN: '' });
    try {
      const answer = await off.request({ method: 'GET', url: STATS_PATH, remoteAddress: '192.0.2.9', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect([answer.statusCode, answer.json()]).toEqual([401, { error: 'stats are off on this gateway: ADMIN_TOKEN is not set' }]);
    } finally {
      await off.drain();
    }
  });

  it('accepts the bearer scheme in any case, and still refuses a wrong token so written', async () => {
    const written = (authorization: string) => ingest.request({ method: 'GET', url: STATS_PATH, remoteAddress: '192.0.2.4', headers: { authorization } });
    expect((await written(`bearer ${ADMIN_TOKEN}`)).statusCode).toBe(200);
    expect((await written(`BEARER  ${ADMIN_TOKEN}`)).statusCode).toBe(200);
    const wrong = await written('bearer wrong-token-of-some-length');
    expect([wrong.statusCode, wrong.json()]).toEqual([401, { error: 'wrong admin token' }]);
  });

  it('takes the client from X-Forwarded-For only from a trusted proxy, so clients behind an ingress do not share one allowance', async () => {
    const behindIngress = createInProcessIngest(db.sql, db.url, { ADMIN_RATE_LIMIT_PER_MINUTE: String(LIMIT), TRUSTED_PROXIES: '198.51.100.0/24' });
    const via = (socket: string, client: string, token = ADMIN_TOKEN) =>
      behindIngress.request({ method: 'GET', url: STATS_PATH, remoteAddress: socket, headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': client } });
    try {
      // A guesser behind the ingress uses up their own allowance, not the admin's.
      for (let i = 0; i < LIMIT; i += 1) expect((await via('198.51.100.7', '203.0.113.66', `wrong-guess-${i}`)).statusCode).toBe(401);
      expect((await via('198.51.100.7', '203.0.113.66', 'wrong-guess-x')).statusCode).toBe(429);
      expect((await via('198.51.100.7', '203.0.113.10')).statusCode).toBe(200);
      // A client that is not a trusted proxy cannot pick its own address with the header.
      for (let i = 0; i < LIMIT; i += 1) expect((await via('192.0.2.77', `203.0.113.${100 + i}`)).statusCode).toBe(200);
      expect((await via('192.0.2.77', '203.0.113.200')).statusCode).toBe(429);
    } finally {
      await behindIngress.drain();
    }
  });

  it('leaves the webhook and health paths outside the admin limit', async () => {
    for (let i = 0; i < LIMIT + 2; i += 1) {
      expect((await ingest.request({ method: 'GET', url: '/healthz', remoteAddress: '192.0.2.3' })).statusCode).toBe(200);
    }
  });
});
