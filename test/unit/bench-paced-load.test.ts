import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runPaced } from '../../bench/load';
import { createMessageSource } from '../../bench/messages';

describe('the bench\'s paced open loop', () => {
  it('keeps the wait of a request that got no answer in its latencies, so failures cannot flatter the tail', async () => {
    // Port 9 refuses every connection: no request is answered.
    const result = await runPaced('http://127.0.0.1:9/webhooks/meta', createMessageSource('paced-unit', 'secret'), 50, 0.2);
    expect(result.ok).toBe(0);
    expect(result.errors).toBe(10);
    expect(Number.isFinite(result.latencyMs.p99)).toBe(true);
    expect(result.latencyMs.max).toBeGreaterThanOrEqual(result.latencyMs.p50);
  });

  it('takes the achieved rate over the time until the last answer, so a server that falls behind shows it', async () => {
    const server = http.createServer((_req, res) => void setTimeout(() => res.writeHead(200).end(), 300));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/meta`;
      // 10 requests due over 0.2 s, each answered 300 ms later: the last at 0.48 s at the earliest.
      const result = await runPaced(url, createMessageSource('paced-unit-slow', 'secret'), 50, 0.2);
      expect(result.ok).toBe(10);
      expect(result.seconds).toBeGreaterThanOrEqual(0.48);
      expect(result.requestsPerSecond).toBeLessThan(25);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
