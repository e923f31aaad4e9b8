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

  it('gives each rehearsal senders of its own, so that two pods rehearsing at once never wait on each other\'s rate-limit rows', async () => {
    const sendersOf = async () => {
      const senders = new Set<string>();
      const listener: RequestListener = (req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.once('end', () => {
          senders.add(JSON.parse(body).entry[0].changes[0].value.messages[0].from);
          res.writeHead(200).end();
        });
      };
      await rehearseWebhooks(listener, 'rehearsal-secret', 1_000);
      return senders;
    };
    const [first, second] = [await sendersOf(), await sendersOf()];
    expect(first.size).toBe(1_000);
    expect([...first].every((sender) => /^1555\d{9}$/.test(sender))).toBe(true);
    // Six random digits per rehearsal: two share their senders once in a million.
    expect([...second].filter((sender) => first.has(sender))).toEqual([]);
  });
});
