import { randomBytes } from 'node:crypto';
import http, { type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { untraced } from '../telemetry/spans';
import { META_WEBHOOK_PATH } from '../webhooks/paths';
import { metaSignature, metaTextEnvelope } from '../webhooks/samples';

const REHEARSAL_CONNECTIONS = 16;
/**
 * A parent whose flags say "not sampled": with a parent-based sampler (OpenTelemetry's
 * default) no rehearsal request shows up among the shop's traces. The requests are sent
 * untraced, or the HTTP client instrumentation would replace it with a sampled span of its own.
 */
const UNSAMPLED_TRACEPARENT = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`;

/**
 * Sends signed Meta text webhooks through `listener` on a loopback port of its own, and closes
 * it. The ingest builds that listener like its own, over a ledger that rolls every batch back
 * and a relay whose publishes no queue takes (see startIngest). A new process runs its code in
 * V8's interpreter at first, and a new pool connection plans its statements: the first few
 * hundred requests cost several times a warm one's CPU, and at 500 req/s the queue that built
 * up behind them made a fresh pod's first 200 ms the worst of its life. Rehearsed before
 * `/readyz` says ready, that cost is paid before any provider's request: the request path, the
 * group commit, postgres.js and amqplib alike. Once `stop` aborts (the warm-up's deadline
 * passed and the pod is ready anyway), no further request is sent: on a slow database the
 * rest would compete with real traffic for the pool. Resolves with the number of 200 answers.
 */
export async function rehearseWebhooks(listener: RequestListener, appSecret: string, requests: number, stop?: AbortSignal): Promise<number> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new http.Agent({ keepAlive: true, maxSockets: REHEARSAL_CONNECTIONS });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${META_WEBHOOK_PATH}`;
  // Ids and senders of their own, so that two pods rehearsing at once never wait on each other's
  // rows: the messages', and the rate-limit counts of their senders (1555, six digits of the
  // pod's own, then one of 1,000 senders: 13 digits, a number's length).
  const tag = randomBytes(6).toString('hex');
  const senderPrefix = `1555${String(randomBytes(4).readUInt32BE() % 1_000_000).padStart(6, '0')}`;
  let next = 0;
  let accepted = 0;
  const connection = async () => {
    while (next < requests && !stop?.aborted) {
      const index = next++;
      const body = JSON.stringify(
        metaTextEnvelope({ id: `wamid.wagate-rehearsal-${tag}-${index}`, from: `${senderPrefix}${String(index % 1000).padStart(3, '0')}`, text: '2 margherita pizzas and a coke' }),
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
    const headers = { 'content-type': 'application/json', 'x-hub-signature-256': signature, traceparent: UNSAMPLED_TRACEPARENT };
    const request = untraced(() =>
      http.request(url, { method: 'POST', agent, headers }, (response) => {
        response.resume();
        response.once('end', () => resolve(response.statusCode ?? 0));
      }),
    );
    request.once('error', reject);
    request.end(body);
  });
}
