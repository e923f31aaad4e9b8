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
  /** Null when the request got an answer; otherwise why not (refused, reset, timed out). */
  error: string | null;
  /**
   * k6's http_req_duration: sending, waiting and receiving, from the connection being ready
   * (connected, its TLS handshake done, or taken from the pool) to the answer's end or the
   * timeout. A request never written (refused, not connected in time) has 0, as in k6; its
   * connecting is not in it either.
   */
  durationMs: number;
}

export interface JsonAnswer extends Answer {
  body: unknown;
  retryAfter: string | null;
}

export interface HttpClient {
  send(baseUrl: string, request: PlannedRequest): Promise<Answer>;
  /** stop aborts the request at once (an interrupted run's drain wait). */
  getJson(url: string, headers: Record<string, string>, stop?: AbortSignal): Promise<JsonAnswer>;
  close(): void;
}

interface Exchange extends Answer {
  body: string;
  retryAfter: string | null;
}

/** Keep-alive connections without a ceiling: the arrival-rate loop, not the pool, bounds concurrency (MAX_VUS). */
export function createHttpClient(): HttpClient {
  const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
  const request = (url: string, method: string, headers: Record<string, string>, body: string | null, stop?: AbortSignal) =>
    new Promise<Exchange>((resolve) => {
      const target = new URL(url);
      const transport = target.protocol === 'https:' ? https : http;
      // The whole exchange, connecting and a slow body included, as k6's timeout covers it: a
      // socket timeout alone is armed only once connected, and is reset by every byte.
      const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
      const signal = stop ? AbortSignal.any([timeout, stop]) : timeout;
      let readyAtMs: number | null = null;
      let written = false;
      const durationMs = (answered: boolean) => ((answered || written) && readyAtMs !== null ? performance.now() - readyAtMs : 0);
      const fail = (error: Error) => resolve({ status: 0, body: '', error: noAnswer(error), retryAfter: null, durationMs: durationMs(false) });
      const outgoing = transport.request(target, { method, headers, agent: agents[target.protocol as 'http:' | 'https:'], signal }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        const retryAfter = response.headers['retry-after'] ?? null;
        response.once('end', () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), error: null, retryAfter, durationMs: durationMs(true) }),
        );
        response.once('error', fail);
      });
      outgoing.once('socket', (socket) => {
        const ready = () => (readyAtMs = performance.now());
        // A pooled connection is ready at once; a new one once connected, as k6 starts its clock.
        if (!socket.connecting) ready();
        else socket.once(target.protocol === 'https:' ? 'secureConnect' : 'connect', ready);
      });
      // Flushed to the connection: from here on, no answer means a wait that counts.
      outgoing.once('finish', () => (written = true));
      outgoing.once('error', fail);
      outgoing.end(body ?? undefined);
    });
  return {
    async send(baseUrl, planned) {
      const { status, error, durationMs } = await request(baseUrl + planned.path, 'POST', planned.headers, planned.body);
      return { status, error, durationMs };
    },
    async getJson(url, headers, stop) {
      const { body, ...answer } = await request(url, 'GET', headers, null, stop);
      try {
        return { ...answer, body: JSON.parse(body) as unknown };
      } catch {
        return { ...answer, body: null };
      }
    },
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}
