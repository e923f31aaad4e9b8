import http from 'node:http';
import autocannon from 'autocannon';
import type { MessageSource, SignedMessage } from './messages';

export interface LoadResult {
  seconds: number;
  /** Answered 2xx. */
  ok: number;
  /** Answered with another status, e.g. 503 when the ingest sheds load. */
  non2xx: number;
  /** Never answered: socket errors and timeouts. */
  errors: number;
  /** The paced runs: what each request that was not a 2xx got instead ("503", "ECONNRESET", ...), counted. */
  failures?: Record<string, number>;
  /**
   * The paced runs: how late the generator sent each request after it was due. It is part of
   * every latency (counted from when a request was due), and shows when the generator itself,
   * not the server, was short of CPU.
   */
  sendLagMs?: LatencySummary;
  /** 2xx answers per second. */
  requestsPerSecond: number;
  latencyMs: LatencySummary;
  /** Message ids the server answered 2xx; each must be durable on the wagate side. */
  ackedIds: string[];
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

const REQUEST_TIMEOUT_SECONDS = 10;

function headersFor(signature: string): Record<string, string> {
  return { 'content-type': 'application/json', 'x-hub-signature-256': signature };
}

/**
 * Closed loop: `connections` clients each send a request as soon as their last one is
 * answered, so this finds the most the server sustains. autocannon records latency in whole
 * milliseconds; the 'response' event carries the exact figure, so the percentiles are ours.
 */
export async function runClosedLoop(url: string, source: MessageSource, connections: number, seconds: number): Promise<LoadResult> {
  const latencies: number[] = [];
  const ackedIds: string[] = [];
  let non2xx = 0;
  const options: autocannon.Options = {
    url,
    connections,
    duration: seconds,
    timeout: REQUEST_TIMEOUT_SECONDS,
    requests: [
      {
        method: 'POST',
        setupRequest: (request, context) => {
          const message = source.next();
          (context as { id?: string }).id = message.id;
          return { ...request, body: message.body, headers: { ...request.headers, ...headersFor(message.signature) } };
        },
        // Runs before the client builds its next request, so the context still names this one.
        onResponse: (status, _body, context) => {
          if (status >= 200 && status < 300) ackedIds.push((context as { id: string }).id);
          else non2xx += 1;
        },
      },
    ],
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (error, done) => (error ? reject(error as Error) : resolve(done)));
    instance.on('response', (_client, _status, _bytes, responseTimeMs) => latencies.push(responseTimeMs));
  });
  return {
    seconds: result.duration,
    ok: ackedIds.length,
    non2xx,
    errors: result.errors,
    requestsPerSecond: ackedIds.length / result.duration,
    latencyMs: summarize(latencies),
    ackedIds,
  };
}

/**
 * Open loop at a fixed arrival rate, like k6's constant-arrival-rate. autocannon's
 * overallRate is not used here: it lets each connection send its per-second quota back to
 * back at the top of every second, which is a burst, not a steady 500 req/s. Latency runs
 * from the moment a request was due, so a stalled generator or server cannot hide delay
 * (no coordinated omission).
 */
export async function runPaced(url: string, source: MessageSource, rate: number, seconds: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const intervalMs = 1000 / rate;
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  const sendLags: number[] = [];
  const ackedIds: string[] = [];
  let non2xx = 0;
  let errors = 0;
  const failures: Record<string, number> = {};
  const fail = (kind: string) => (failures[kind] = (failures[kind] ?? 0) + 1);
  const startMs = performance.now();
  let lastAnswerMs = startMs;

  await new Promise<void>((resolve) => {
    let settled = 0;
    const finish = () => (settled += 1) === total && resolve();
    const send = (index: number) => {
      const dueMs = startMs + index * intervalMs;
      sendLags.push(performance.now() - dueMs);
      const message = source.next();
      const request = http.request(url, { method: 'POST', agent, headers: headersFor(message.signature) }, (response) => {
        response.resume();
        response.once('end', () => {
          lastAnswerMs = performance.now();
          latencies.push(lastAnswerMs - dueMs);
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) ackedIds.push(message.id);
          else {
            non2xx += 1;
            fail(String(status));
          }
          finish();
        });
      });
      request.setTimeout(REQUEST_TIMEOUT_SECONDS * 1000, () => request.destroy(new Error('timed out')));
      request.once('error', (error: NodeJS.ErrnoException) => {
        // A request without an answer waited too, up to its timeout: left out, it would flatter the tail exactly when the server struggles.
        latencies.push(performance.now() - dueMs);
        errors += 1;
        fail(error.code ?? error.message);
        finish();
      });
      request.end(message.body);
    };
    let next = 0;
    const tick = () => {
      const now = performance.now();
      while (next < total && startMs + next * intervalMs <= now) send(next++);
      if (next < total) setTimeout(tick, Math.max(0, startMs + next * intervalMs - performance.now()));
    };
    tick();
  });
  // Until the last answer, not the nominal time: a server that falls behind stretches the run,
  // and over the nominal time its rate would still read as the one asked for, while the CPU
  // measured around the run (backend cores per 1k req/s) is averaged over the longer time.
  // Requests that got no answer are counted apart (errors): one timing out must not stretch it.
  const elapsedSeconds = Math.max(seconds, (lastAnswerMs - startMs) / 1000);
  agent.destroy();
  return {
    seconds: elapsedSeconds, ok: ackedIds.length, non2xx, errors, failures, sendLagMs: summarize(sendLags),
    requestsPerSecond: ackedIds.length / elapsedSeconds, latencyMs: summarize(latencies), ackedIds,
  };
}

function summarize(values: number[]): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]! };
}

export interface BatchResult {
  seconds: number;
  ok: number;
  non2xx: number;
  errors: number;
  requestsPerSecond: number;
  ackedIds: string[];
}

/**
 * Posts a fixed list of messages, `concurrency` at a time, each connection sending its next
 * message as soon as the last one is answered. For filling the queues, not for latency.
 */
export async function postAll(url: string, messages: SignedMessage[], concurrency: number): Promise<BatchResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const ackedIds: string[] = [];
  let non2xx = 0;
  let errors = 0;
  let next = 0;
  const post = (message: SignedMessage) =>
    new Promise<void>((resolve) => {
      const request = http.request(url, { method: 'POST', agent, headers: headersFor(message.signature) }, (response) => {
        response.resume();
        response.once('end', () => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) ackedIds.push(message.id);
          else non2xx += 1;
          resolve();
        });
      });
      request.setTimeout(REQUEST_TIMEOUT_SECONDS * 1000, () => request.destroy(new Error('timed out')));
      request.once('error', () => {
        errors += 1;
        resolve();
      });
      request.end(message.body);
    });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < messages.length) await post(messages[next++]!);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { seconds, ok: ackedIds.length, non2xx, errors, requestsPerSecond: ackedIds.length / seconds, ackedIds };
}
