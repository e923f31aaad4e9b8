import http from 'node:http';
import https from 'node:https';
import type { PlannedRequest } from '../lib/payloads.ts';

/** As k6's default per-request timeout is too long for an ack, the scripts and this runner both use 10 s. */
export const REQUEST_TIMEOUT_MS = 10_000;

function noAnswer(error: Error): string {
  return error.name === 'AbortError' || error.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS} ms` : error.message;
}

export interface Answer {
  status: number;
  /** Null when the request got no answer (refused, reset, timed out). */
  error: string | null;
}

export interface HttpClient {
  send(baseUrl: string, request: PlannedRequest): Promise<Answer>;
  getJson(url: string, headers: Record<string, string>): Promise<{ status: number; body: unknown; retryAfter: string | null }>;
  close(): void;
}

/** Keep-alive connections without a ceiling: the arrival-rate loop, not the pool, bounds concurrency (MAX_VUS). */
export function createHttpClient(): HttpClient {
  const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
  const request = (url: string, method: string, headers: Record<string, string>, body: string | null) =>
    new Promise<{ status: number; body: string; error: string | null; retryAfter: string | null }>((resolve) => {
      const target = new URL(url);
      const transport = target.protocol === 'https:' ? https : http;
      // The whole exchange, connecting and a slow body included, as k6's timeout covers it: a
      // socket timeout alone is armed only once connected, and is reset by every byte.
      const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
      const outgoing = transport.request(target, { method, headers, agent: agents[target.protocol as 'http:' | 'https:'], signal }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        const retryAfter = response.headers['retry-after'] ?? null;
        response.once('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), error: null, retryAfter }));
        response.once('error', (error) => resolve({ status: 0, body: '', error: noAnswer(error), retryAfter: null }));
      });
      outgoing.once('error', (error) => resolve({ status: 0, body: '', error: noAnswer(error), retryAfter: null }));
      outgoing.end(body ?? undefined);
    });
  return {
    async send(baseUrl, planned) {
      const { status, error } = await request(baseUrl + planned.path, 'POST', planned.headers, planned.body);
      return { status, error };
    },
    async getJson(url, headers) {
      const { status, body, retryAfter } = await request(url, 'GET', headers, null);
      try {
        return { status, body: JSON.parse(body) as unknown, retryAfter };
      } catch {
        return { status, body: null, retryAfter };
      }
    },
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}
