import type { PlannedRequest } from '../../load-tests/lib/payloads.ts';
import { createHttpClient, REQUEST_TIMEOUT_MS } from '../../load-tests/runner/http.ts';
import { startLocalServer } from '../support/local-server';

const REQUEST: PlannedRequest = { path: '/', headers: {}, body: '{}', expectedStatus: 200, tags: { kind: 'meta' }, messageId: 'm' };

/** Sends the request and measures, around it, how long the whole exchange took. */
async function timedSend(baseUrl: string) {
  const client = createHttpClient();
  try {
    const startedMs = performance.now();
    const answer = await client.send(baseUrl, REQUEST);
    return { answer, elapsedMs: performance.now() - startedMs };
  } finally {
    client.close();
  }
}

describe('the Node runner\'s HTTP client', () => {
  it('gives a refused request k6\'s http_req_duration of 0: it was never written', async () => {
    const { answer } = await timedSend('http://127.0.0.1:9');
    expect(answer).toEqual({ status: 0, error: expect.stringContaining('ECONNREFUSED'), durationMs: 0 });
  });

  it('times an answered request from its connection to the end of the answer, as k6 does', async () => {
    const server = await startLocalServer((_req, res) => res.end('ok'));
    try {
      const { answer, elapsedMs } = await timedSend(server.baseUrl);
      expect(answer).toMatchObject({ status: 200, error: null });
      expect(answer.durationMs).toBeGreaterThan(0);
      expect(answer.durationMs).toBeLessThanOrEqual(elapsedMs);
    } finally {
      await server.close();
    }
  });

  it('gives up after 10 s on a request never answered, or whose answer trickles in, as k6\'s timeout does, and counts the wait in its duration', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const silent = await startLocalServer(() => {});
    const trickling = await startLocalServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      // A byte every half second: a socket's idle timeout never fires on it.
      const timer = setInterval(() => res.write('.'), 500);
      timers.add(timer);
      res.on('close', () => clearInterval(timer));
    });
    try {
      const results = await Promise.all([timedSend(silent.baseUrl), timedSend(trickling.baseUrl)]);
      for (const { answer, elapsedMs } of results) {
        expect(answer).toMatchObject({ status: 0, error: `no answer within ${REQUEST_TIMEOUT_MS} ms` });
        expect(elapsedMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS);
        // Written, then waited for: all of the exchange but the local connect.
        expect(answer.durationMs).toBeLessThanOrEqual(elapsedMs);
        expect(answer.durationMs).toBeGreaterThan(elapsedMs - 1000);
      }
    } finally {
      timers.forEach(clearInterval);
      await Promise.all([silent.close(), trickling.close()]);
    }
  }, 30_000);
});
