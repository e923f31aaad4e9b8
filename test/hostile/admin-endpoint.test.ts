import { STATS_PATH } from '../../src/http/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { createInProcessIngest, type InProcessIngest } from '../support/in-process';
import { ADMIN_TOKEN } from '../support/ingest';

/** The admin endpoint's own rate limit, per client address, on requests with the token. */
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
  it('answers 429 with Retry-After beyond its limit, only for that address', async () => {
    for (let i = 0; i < LIMIT; i += 1) expect((await stats('192.0.2.1')).statusCode).toBe(200);
    const limited = await stats('192.0.2.1');
    expect(limited.statusCode).toBe(429);
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.json()).toEqual({ error: `too many admin requests; retry in ${retryAfter} s` });
    // Another client is not held back by the first.
    expect((await stats('192.0.2.2')).statusCode).toBe(200);
  });

  it('does not count wrong tokens, so nobody without the token can keep the admin out from a shared address', async () => {
    // Behind a load balancer every client may arrive from the balancer's address.
    for (let i = 0; i < 10 * LIMIT; i += 1) expect((await stats('192.0.2.9', `wrong-token-guess-${i}`)).statusCode).toBe(401);
    for (let i = 0; i < LIMIT; i += 1) expect((await stats('192.0.2.9')).statusCode).toBe(200);
  });

  it('leaves the webhook and health paths outside the admin limit', async () => {
    for (let i = 0; i < LIMIT + 2; i += 1) {
      expect((await ingest.request({ method: 'GET', url: '/healthz', remoteAddress: '192.0.2.3' })).statusCode).toBe(200);
    }
  });
});
