import type { RequestListener } from 'node:http';
import { rehearseWebhooks } from '../../src/http/webhook-rehearsal';

describe('the warm-up rehearsal', () => {
  it('sends nothing more once stopped, and resolves when the requests under way are answered', async () => {
    // A listener as slow as an ingest on a slow database: each answer takes 50 ms.
    let received = 0;
    const slow: RequestListener = (req, res) => {
      received += 1;
      req.resume();
      req.once('end', () => setTimeout(() => res.writeHead(200).end(), 50));
    };
    const stop = new AbortController();
    const rehearsal = rehearseWebhooks(slow, 'rehearsal-secret', 2_000, stop.signal);
    await new Promise((resolve) => setTimeout(resolve, 200));
    stop.abort();
    const sentAtStop = received;
    const answered = await rehearsal;
    // At most the 16 requests under way at the stop are answered after it.
    expect(received).toBeLessThanOrEqual(sentAtStop + 16);
    expect(answered).toBe(received);
    expect(answered).toBeLessThan(2_000);
  });
});
