import http, { type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LedgerRecorder } from '../ledger/recorder';
import { META_WEBHOOK_PATH } from '../webhooks/paths';
import { metaSignature, metaTextEnvelope } from '../webhooks/samples';

const REHEARSAL_CONNECTIONS = 16;

/**
 * A ledger for rehearsals: every message is "queued" at once, nothing reaches Postgres or the
 * outbox, so a rehearsal leaves no row, no count against a sender and no queue message.
 */
export const rehearsalRecorder: LedgerRecorder = {
  record: async (request) => request.items.map(() => 'queued'),
  drain: async () => undefined,
};

/**
 * Sends signed Meta text webhooks through `listener` (the ingest's own, built over
 * rehearsalRecorder and metrics of its own) on a loopback port of its own, and closes it. A new
 * process runs its request path in V8's interpreter at first: the first few hundred
 * requests cost several times a warm one's CPU, and at 500 req/s the queue that builds up
 * behind them made a fresh pod's first second the worst of its life. Rehearsed before
 * `/readyz` says ready, that cost is paid before any provider's request.
 * Resolves with the number of 200 answers.
 */
export async function rehearseWebhooks(listener: RequestListener, appSecret: string, requests: number): Promise<number> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new http.Agent({ keepAlive: true, maxSockets: REHEARSAL_CONNECTIONS });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${META_WEBHOOK_PATH}`;
  let next = 0;
  let accepted = 0;
  const connection = async () => {
    while (next < requests) {
      const index = next++;
      const body = JSON.stringify(
        metaTextEnvelope({ id: `wamid.wagate-rehearsal-${index}`, from: `1555${String(index % 1000).padStart(7, '0')}`, text: '2 margherita pizzas and a coke' }),
      );
      if ((await post(agent, url, body, metaSignature(appSecret, body))) === 200) accepted += 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: REHEARSAL_CONNECTIONS }, connection));
  } finally {
    agent.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return accepted;
}

function post(agent: http.Agent, url: string, body: string, signature: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature } }, (response) => {
      response.resume();
      response.once('end', () => resolve(response.statusCode ?? 0));
    });
    request.once('error', reject);
    request.end(body);
  });
}
