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
});
